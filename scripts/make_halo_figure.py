"""Make docs/halo.jpg: crops of real stacks fused by depthmap without and with ``--halo``.

Usage: .venv/bin/python scripts/make_halo_figure.py [--shared ../shared/data]

Rows: the bundled examples/pcb stack (MIT, Petteri Aimonen) and, when the shared data folder
is present, the cmcguinness-macro ring (Apache-2.0, Charles McGuinness; aligned first).
Columns: depthmap, depthmap --halo, and the pixels the rule moved to a nearer layer (white).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from stackmff import fuse_stack
from stackmff.io import expand_inputs, load_stack
from stackmff.retouch import limit_result_halos

ROOT = Path(__file__).resolve().parents[1]
SCALE = 2  # crops are enlarged by pixel repetition so the edges stay visible
# (name, folder relative to the data root or the repository, align, crop y, x, height, width)
CROPS = [("pcb", ROOT / "examples" / "pcb", False, (280, 490, 140, 250)),
         ("ring", Path("cmcguinness-macro") / "stack", True, (400, 600, 140, 250))]


def crops(folder: Path, align: bool, box: tuple[int, int, int, int]) -> list[np.ndarray]:
    stack = load_stack(expand_inputs([folder]), match_sizes=align)
    layers = stack.layers
    if align:
        from stackmff.registration import align_stack

        layers = align_stack(layers).layers
    result = fuse_stack(layers, "depthmap")
    limited = limit_result_halos(layers, result)
    moved = (limited.focus_map != result.focus_map).astype(np.float32)
    y, x, h, w = box
    images = [result.fused, limited.fused, np.repeat(moved[..., None], 3, axis=2)]
    return [np.rint(image[y:y + h, x:x + w, ::-1] * 255).astype(np.uint8) for image in images]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "halo.jpg")
    args = parser.parse_args()
    rows = []
    for name, folder, align, box in CROPS:
        folder = folder if folder.is_absolute() else args.shared / folder
        if not folder.is_dir():
            print(f"skipped {name}: {folder} not found")
            continue
        parts = crops(folder, align, box)
        gap = np.full((parts[0].shape[0], 6, 3), 255, np.uint8)
        rows.append(np.concatenate([parts[0], gap, parts[1], gap, parts[2]], axis=1))
    width = max(row.shape[1] for row in rows)
    rows = [np.pad(row, ((0, 6), (0, width - row.shape[1]), (0, 0)), constant_values=255)
            for row in rows]
    figure = np.concatenate(rows, axis=0)
    figure = cv2.resize(figure, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(args.out), figure, [cv2.IMWRITE_JPEG_QUALITY, 90])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
