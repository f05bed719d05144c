"""A full-resolution decision at the focus map's rims, tried against the network's own.

The network decides at a quarter of the resolution; where its map changes layer, the rim may
sit a pixel off. This re-decides every pixel within one pixel of a boundary between the
lowest and highest layer of its 3 x 3 neighbourhood, by each layer's squared Laplacian at
the pixel, switching only where the other layer's is at least twice the network's choice.
The hard gather and the band blend (with the re-decided pixels gathered) are scored with and
without it on the out-of-domain suites (docs/training.md#stepped-slides).

Usage: .venv/bin/python benchmarks/rim_decision.py --data ../shared/data [--method v3+]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from statistics import mean

import cv2
import numpy as np

from stackmff.api import fuse_stack
from stackmff.evaluation import suites
from stackmff.metrics import psnr
from stackmff.stack_ops import gather, luma

MARGIN = 2.0   # the other layer's measure over the network's choice needed to switch


def rim_decision(layers: np.ndarray, focus_map: np.ndarray) -> np.ndarray:
    """The focus map with its rim pixels re-decided at full resolution."""
    grey = luma(layers)
    measure = np.stack([cv2.Laplacian(g, cv2.CV_32F, ksize=3) ** 2 for g in grey])
    low = cv2.erode(focus_map.astype(np.float32), np.ones((3, 3))).astype(np.int64)
    high = cv2.dilate(focus_map.astype(np.float32), np.ones((3, 3))).astype(np.int64)
    rim = low != high
    best = focus_map.astype(np.int64)
    best_measure = np.take_along_axis(measure, best[None], 0)[0]
    for other in (low, high):
        other_measure = np.take_along_axis(measure, other[None], 0)[0]
        switch = rim & (other_measure > MARGIN * best_measure)
        best = np.where(switch, other, best)
        best_measure = np.where(switch, other_measure, best_measure)
    return best


def stacks(data: Path, raytraced: Path):
    yield from suites.microscopy_stacks()
    yield from suites.real_stacks(data)
    yield from suites.hci_stacks(data)
    yield from suites.raytraced_stacks(raytraced)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--raytraced", type=Path, default=Path("runs/raytraced-validation"))
    parser.add_argument("--method", default="v3", choices=("v3", "v3+"))
    args = parser.parse_args()
    rows: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for stack in stacks(args.data, args.raytraced):
        scale = 65535 if stack.dtype == np.uint16 else 255   # the files the methods read
        layers = (np.round(stack.layers * scale) / scale).astype(np.float32)
        hard = fuse_stack(layers, args.method)
        band = fuse_stack(layers, args.method, blend="band")
        decided = rim_decision(layers, hard.focus_map)
        changed = decided != hard.focus_map
        hard_decided = gather(layers, decided)
        band_decided = band.fused.copy()
        band_decided[changed] = hard_decided[changed]
        key = stack.variant if stack.suite in ("microscopy", "devernay-office") else stack.suite
        for name, image in (("hard", hard.fused), ("hard, rims decided", hard_decided),
                            ("band", band.fused), ("band, rims decided", band_decided)):
            rows[key][name].append(psnr(image, stack.truth))
        print(f"{key} {stack.name}: {changed.mean():.2%} of the pixels re-decided", flush=True)
    names = list(next(iter(rows.values())))
    print(f"\n| set ({args.method}) | " + " | ".join(names) + " |\n|---|"
          + "---:|" * len(names))
    for key, by_name in rows.items():
        print(f"| {key} | " + " | ".join(f"{mean(by_name[n]):.2f}" for n in names) + " |")


if __name__ == "__main__":
    main()
