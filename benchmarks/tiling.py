"""What tiles cost and how much they change: the network's focus map in tiles against one
untiled pass, per margin, with the image-wide means pass and without it.

Usage: .venv/bin/python benchmarks/tiling.py [--tile 1024] [--margins 32 64 96 128]
       [--data ../shared/data] [--workdir DIR]

Stacks: the real 7 x 2048 x 1536 circuit-board stack of ``--data`` (pcb-focus-stack; the
copy in examples/ is downscaled) and the
10 x 2048 x 1536 JPEG stack of ``end_to_end.py``. Each is fused once untiled (the reference,
which a tile plan tries to reproduce), then with ``--tile`` px cores and each margin, with the
image-wide means (the default) and with each tile's own (``--tile-local-means``), all in one
process. Prints the share of pixels whose layer equals the untiled map's, and the seconds
as a ratio to the untiled pass's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from end_to_end import STACKS, render_stack  # noqa: E402


def main() -> None:
    from stackmff.api import prepare_method
    from stackmff.io import load_stack
    from stackmff.runtime.allocator import keep_freed_memory

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--margins", type=int, nargs="+", default=[32, 64, 96, 128])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    keep_freed_memory()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="stackmff-tiling-"))
    stacks = {}
    pcb = sorted((args.data / "pcb-focus-stack" / "stack").glob("*.jpg"))
    if pcb:
        stacks["pcb (real), 7 x 2048 x 1536"] = pcb
    layers, width, height = STACKS["3mp"]
    folder = work / "3mp"
    stacks[f"rendered, {layers} x {width} x {height}"] = (
        sorted(folder.glob("*.jpg")) or render_stack(folder, layers, width, height))
    print("| stack | tiles | margin | means | same map as untiled | time / untiled |")
    print("|---|---:|---:|---|---:|---:|")
    for name, paths in stacks.items():
        layers = load_stack(paths, floats=False).layers
        untiled_fuser = prepare_method("v3", tile=None)
        untiled_fuser(layers[:, :64, :64])  # the first call's one-time costs are not the tiles'
        started = time.perf_counter()
        reference = untiled_fuser(layers).focus_map
        untiled = time.perf_counter() - started
        for margin in args.margins:
            for means in (True, False):
                fuser = prepare_method("v3", tile=args.tile, margin=margin, global_means=means)
                started = time.perf_counter()
                focus_map = fuser(layers).focus_map
                seconds = time.perf_counter() - started
                print(f"| {name} | {args.tile} px | {margin} px | "
                      f"{'image' if means else 'tile'} | "
                      f"{np.mean(focus_map == reference):.3%} | {seconds / untiled:.2f} |",
                      flush=True)


if __name__ == "__main__":
    main()
