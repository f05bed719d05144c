"""Side-by-side details of the network against the classical methods on real stacks that have
no ground truth: docs/real_stacks.jpg.

Usage: .venv/bin/python scripts/make_real_comparison.py [--data ../shared/data]
       [--checkpoint PATH] [--out docs/real_stacks.jpg]

Each row is one stack: the network's fused image, then the same detail from the network,
depthmap and pyramid. The detail is the window where depthmap's focus map changes most on
textured content (the depth edges, where halos and blocky maps show).
mobile-depth-keyboard is aligned first.
The data sets are research-only: the figure shows results, the script copies no input.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

import stackmff
from stackmff.io.focusmap import focus_map_picture
from stackmff.metrics.reference import to_uint8
from stackmff.registration import align_stack
from stackmff.stack_ops import luma

ROOT = Path(__file__).resolve().parents[1]
STACKS = {
    "mobile-depth-keyboard": "mobile-depth-keyboard/stack",
    "pcb-focus-stack": "pcb-focus-stack/stack",
    "cmcguinness-macro": "cmcguinness-macro/stack",
    "lytro-mff 01": "lytro-mff/pairs/lytro-01",
    "lytro-mff 05": "lytro-mff/pairs/lytro-05",
}
HEIGHT = 220
DETAIL = 160


def busiest_window(focus_map: np.ndarray, image: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` window where the focus map changes most on textured
    content: the depth edges, where halos and blocky maps show."""
    edges = np.zeros(focus_map.shape, np.float32)
    edges[:, 1:] += focus_map[:, 1:] != focus_map[:, :-1]
    edges[1:] += focus_map[1:] != focus_map[:-1]
    grey = luma(image).astype(np.float32)
    texture = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    score = (cv2.boxFilter(edges, -1, (size, size))
             * cv2.boxFilter(texture, -1, (size, size)))
    h, w = focus_map.shape
    half = size // 2
    inner = score[half:h - half, half:w - half]
    y, x = np.unravel_index(np.argmax(inner), inner.shape)
    return int(y), int(x)


def labelled(image: np.ndarray, caption: str, height: int) -> np.ndarray:
    width = round(image.shape[1] * height / image.shape[0])
    tile = cv2.resize(to_uint8(image), (width, height), interpolation=cv2.INTER_AREA
                      if image.shape[0] > height else cv2.INTER_NEAREST)
    if tile.ndim == 2:
        tile = np.dstack([tile] * 3)
    band = np.full((24, width, 3), 255, np.uint8)
    cv2.putText(band, caption, (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, tile], axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--out", default=str(ROOT / "docs" / "real_stacks.jpg"))
    args = parser.parse_args()
    fuser = stackmff.prepare_method("v3", checkpoint=args.checkpoint)
    rows = []
    for name, folder in STACKS.items():
        path = Path(args.data) / folder
        if not path.is_dir():
            print(f"skipped {name}: {path} not found")
            continue
        stack = stackmff.load_stack(path)
        layers = stack.layers
        if name == "mobile-depth-keyboard":
            layers = align_stack(layers).layers
        fused = {"v3": fuser(layers)}
        for method in ("depthmap", "pyramid"):
            fused[method] = stackmff.fuse_stack(layers, method)
        y, x = busiest_window(fused["depthmap"].focus_map, fused["depthmap"].fused, DETAIL)
        row = [labelled(fused["v3"].fused, f"{name}: v3, {len(layers)} layers", HEIGHT)]
        for method, result in fused.items():
            row.append(labelled(result.fused[y:y + DETAIL, x:x + DETAIL], f"{method}, detail",
                                HEIGHT))
        row.append(labelled(focus_map_picture(fused["v3"].focus_map, len(layers))
                            [y:y + DETAIL, x:x + DETAIL], "v3 focus map, detail", HEIGHT))
        rows.append(np.concatenate(row, axis=1))
        print(f"{name}: done")
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    figure = np.concatenate(rows, axis=0)
    cv2.imwrite(args.out, cv2.cvtColor(figure, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
