"""Cheaper ways to the image-wide means of tiled inference, against the pass that runs the
encoder over every tile window (the default, a third of a tiled stack's time).

Usage: .venv/bin/python benchmarks/cheaper_means.py [--tile 1024] [--data ../shared/data]

The real 7 x 2048 x 1536 circuit-board stack (pcb-focus-stack) is fused once untiled (the
reference), then in ``--tile`` px tiles with 64 px margins, the means taken from:

- every tile window (the default);
- one window over the whole image (exact; needs the memory of an untiled encoder pass);
- one window over the image downscaled 2x (a quarter of the pixels);
- a staggered quarter, or half, of 512 px cells (each with its margin);
- four full-width strips of 256 rows;
- no means pass: each tile its own (``--tile-local-means``).

Prints the share of pixels whose layer equals the untiled map's and the means pass's
seconds as a ratio to the default's, all in one process.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def cells(height: int, width: int, side: int, margin: int, every: int) -> list:
    """Every ``every``-th tile of a ``side`` px grid, staggered by one tile per row."""
    from stackmff.fusion.tiling import plan_tiles

    return [t for t in plan_tiles(height, width, side, margin)
            if (t.core[0] // side + t.core[2] // side) % every == 0]


def strips(height: int, width: int, count: int, rows: int, margin: int) -> list:
    """``count`` full-width strips of ``rows`` core rows, evenly spaced."""
    from stackmff.fusion.tiling import Tile

    centres = [int((k + 0.5) * height / count) for k in range(count)]
    return [Tile((c - rows // 2, c + rows // 2, 0, width),
                 (max(0, c - rows // 2 - margin), min(height, c + rows // 2 + margin), 0, width))
            for c in centres]


def downscaled(layers: np.ndarray, factor: int) -> np.ndarray:
    """Block means of ``factor`` x ``factor`` pixels, in the stack's type."""
    n, height, width = layers.shape[:3]
    h, w = height // factor * factor, width // factor * factor
    blocks = layers[:, :h, :w].astype(np.float32).reshape(
        n, h // factor, factor, w // factor, factor, *layers.shape[3:])
    return np.rint(blocks.mean(axis=(2, 4))).astype(layers.dtype)


def main() -> None:
    from stackmff.api import prepare_method
    from stackmff.fusion.tiling import Tile
    from stackmff.io import load_stack
    from stackmff.runtime.allocator import keep_freed_memory

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    paths = sorted((args.data / "pcb-focus-stack" / "stack").glob("*.jpg"))
    if not paths:
        raise SystemExit(f"no pcb-focus-stack under {args.data}")
    keep_freed_memory()
    layers = load_stack(paths, floats=False).layers
    n, height, width = layers.shape[:3]
    untiled = prepare_method("v3", tile=None)
    untiled(layers[:, :64, :64])  # one-time costs
    reference = untiled(layers).focus_map
    small = downscaled(layers, 2)
    box, small_box = (0, height, 0, width), (0, small.shape[1], 0, small.shape[2])
    whole, small_whole = [Tile(box, box)], [Tile(small_box, small_box)]
    variants = {
        "every tile window (default)": None,
        "one window, whole image": lambda: (layers, whole),
        "one window, downscaled 2x": lambda: (small, small_whole),
        "a quarter of 512 px cells": lambda: (layers, cells(height, width, 512, 64, 4)),
        "half of 512 px cells": lambda: (layers, cells(height, width, 512, 64, 2)),
        "four strips of 256 rows": lambda: (layers, strips(height, width, 4, 256, 64)),
        "none: each tile its own": "off",
    }
    print(f"pcb (real), {n} x {width} x {height}, {args.tile} px tiles, 64 px margins\n")
    print("| means from | same map as untiled | means pass / default's |")
    print("|---|---:|---:|")
    default_seconds = None
    for name, windows in variants.items():
        fuser = prepare_method("v3", tile=args.tile, margin=64, global_means=windows != "off")
        spent = [0.0]
        means_pass = fuser.image_means

        def timed(stack, tiles, windows=windows, means_pass=means_pass, spent=spent):
            started = time.perf_counter()
            means = means_pass(*((stack, tiles) if windows is None else windows()))
            spent[0] = time.perf_counter() - started
            return means

        fuser.image_means = timed
        focus_map = fuser(layers).focus_map
        default_seconds = default_seconds or spent[0]
        print(f"| {name} | {np.mean(focus_map == reference):.3%} | "
              f"{spent[0] / default_seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
