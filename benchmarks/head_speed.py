"""What the v3+ head costs over v3, with its convolution kernel and without, side by side.

Usage: .venv/bin/python benchmarks/head_speed.py [--repeat 3] [--data ../shared/data]

Whole `stackmff fuse` processes, interleaved (``v3``; ``v3+`` with the C kernel; ``v3+`` with
``STACKMFF_NATIVE_HEAD=0``), on the 8 x 1024 x 1024 JPEG stack of ``end_to_end.py`` and on
Lytro #48 from ``--data``; each timed stage by stage inside it. Prints each process and, per
stack, the medians and ``v3+`` over ``v3``, whole process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from end_to_end import profile, render_stack  # noqa: E402

RUNS = [("v3", "1"), ("v3+", "1"), ("v3+", "0")]  # method, STACKMFF_NATIVE_HEAD


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stackmff-head-"))
    stacks = {"8 x 1024 x 1024": render_stack(work / "medium", 8, 1024, 1024),
              "Lytro #48": sorted((args.data / "lytro-refocus-epfl48" / "stack").glob("*.jpg"))}
    for name, paths in stacks.items():
        if not paths:
            print(f"{name}: no files, left out")
            continue
        results: dict[tuple[str, str], list[dict]] = {run: [] for run in RUNS}
        for _ in range(args.repeat):
            for method, native in RUNS:
                os.environ["STACKMFF_NATIVE_HEAD"] = native
                stages = profile(paths, work, method, {})
                results[(method, native)].append(stages)
                print(name, method, "kernel" if native == "1" else "pytorch",
                      f"fuse {stages['fuse']:.2f} s, total {stages['total']:.2f} s, "
                      f"peak {stages['peak']:.2f} GB", flush=True)
        base = statistics.median(s["total"] for s in results[("v3", "1")])
        for (method, native), runs in results.items():
            total = statistics.median(s["total"] for s in runs)
            fuse = statistics.median(s["fuse"] for s in runs)
            label = method + ("" if method == "v3" else " kernel" if native == "1" else " pytorch")
            print(f"median {name} {label}: total {total:.2f} s ({total / base:.2f}x v3), "
                  f"fuse {fuse:.2f} s")


if __name__ == "__main__":
    main()
