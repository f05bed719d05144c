"""Make docs/prefer.jpg: a crop of examples/pcb fused by depthmap, then with --prefer near and
--prefer far, and the pixels each moved (white).

Usage: .venv/bin/python scripts/make_prefer_figure.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

import stackmff
from stackmff.metrics.reference import to_uint8

ROOT = Path(__file__).resolve().parents[1]
SIZE = 200      # the crop, pixels
SCALE = 2       # shown enlarged


def _tile(image: np.ndarray, caption: str) -> np.ndarray:
    image = to_uint8(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    tile = cv2.resize(image, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_NEAREST)
    band = np.full((28, tile.shape[1], 3), 255, np.uint8)
    cv2.putText(band, caption, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1,
                cv2.LINE_AA)
    return np.concatenate([band, tile], axis=0)


def main() -> None:
    stack = stackmff.load_stack(ROOT / "examples" / "pcb")
    plain = stackmff.fuse_stack(stack, "depthmap")
    near = stackmff.fuse_stack(stack, "depthmap", prefer="near")
    far = stackmff.fuse_stack(stack, "depthmap", prefer="far")
    moved = (near.focus_map != plain.focus_map) | (far.focus_map != plain.focus_map)
    counts = cv2.blur(moved.astype(np.float32), (SIZE, SIZE))
    y, x = np.unravel_index(int(np.argmax(counts)), counts.shape)
    y0 = int(np.clip(y - SIZE // 2, 0, moved.shape[0] - SIZE))
    x0 = int(np.clip(x - SIZE // 2, 0, moved.shape[1] - SIZE))
    crop = (slice(y0, y0 + SIZE), slice(x0, x0 + SIZE))
    tiles = [_tile(plain.fused[crop], "depthmap"),
             _tile(near.fused[crop], "--prefer near"),
             _tile(far.fused[crop], "--prefer far"),
             _tile(moved[crop].astype(np.float32), "moved (near or far)")]
    figure = np.concatenate(tiles, axis=1)
    out = ROOT / "docs" / "prefer.jpg"
    cv2.imwrite(str(out), cv2.cvtColor(figure, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {out}: crop x={x0}, y={y0}; moved {moved.mean():.1%} of the image "
          f"(near {np.mean(near.focus_map != plain.focus_map):.1%}, far "
          f"{np.mean(far.focus_map != plain.focus_map):.1%})")


if __name__ == "__main__":
    main()
