"""Make docs/readme_figure.jpg: three input layers, the fused image and the focus map.

Usage: .venv/bin/python scripts/make_readme_figure.py [--method depthmap]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

import stackmff
from stackmff.io.focusmap import focus_map_picture
from stackmff.metrics.reference import to_uint8

ROOT = Path(__file__).resolve().parents[1]
TILE_WIDTH = 384


def _tile(image: np.ndarray, caption: str) -> np.ndarray:
    height = round(image.shape[0] * TILE_WIDTH / image.shape[1])
    tile = cv2.resize(to_uint8(image), (TILE_WIDTH, height), interpolation=cv2.INTER_AREA)
    band = np.full((28, TILE_WIDTH, 3), 255, np.uint8)
    cv2.putText(band, caption, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, tile], axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default=stackmff.DEFAULT_METHOD)
    args = parser.parse_args()
    stack = stackmff.load_stack(ROOT / "examples" / "pcb")
    result = stackmff.fuse_stack(stack, args.method)
    n = len(stack)
    picks = [0, n // 2, n - 1]
    top = [_tile(stack.layers[k], f"input layer {k} of {n}") for k in picks]
    map_picture = focus_map_picture(result.focus_map, n)
    map_picture = map_picture[:, : result.focus_map.shape[1]]  # the bar is unreadable this small
    bottom = [_tile(result.fused, f"fused ({args.method})"),
              _tile(map_picture, "focus map (layer 0 blue ... last red)"),
              _tile(result.fused[150:342, 300:556], "fused, detail")]
    figure = np.concatenate([np.concatenate(top, axis=1), np.concatenate(bottom, axis=1)], axis=0)
    out = ROOT / "docs" / "readme_figure.jpg"
    cv2.imwrite(str(out), cv2.cvtColor(figure, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
