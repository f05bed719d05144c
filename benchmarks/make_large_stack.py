"""Write a large synthetic focus stack to disk, for memory measurements of `stackmff fuse`.

Usage: .venv/bin/python benchmarks/make_large_stack.py OUTDIR [--layers 20] [--width 4000]
       [--height 3000]

Layer k is a colour texture blurred by its distance to a smooth random depth (8-bit JPEG).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--layers", type=int, default=20)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    size = (args.width, args.height)
    texture = cv2.resize(rng.integers(0, 256, (args.height // 3, args.width // 3, 3), np.uint8),
                         size, interpolation=cv2.INTER_CUBIC)
    depth = cv2.resize(rng.random((5, 5)).astype(np.float32), size, interpolation=cv2.INTER_CUBIC)
    depth = (depth - depth.min()) / np.ptp(depth) * (args.layers - 1)
    args.outdir.mkdir(parents=True, exist_ok=True)
    for k in range(args.layers):
        sharp = np.abs(depth - k) < 0.5
        blurred = cv2.GaussianBlur(texture, (0, 0), 4.0)
        layer = np.where(sharp[..., None], texture, blurred)
        cv2.imwrite(str(args.outdir / f"layer_{k:02d}.jpg"), layer, [cv2.IMWRITE_JPEG_QUALITY, 90])
    print(f"wrote {args.layers} layers of {args.width}x{args.height} to {args.outdir}")


if __name__ == "__main__":
    main()
