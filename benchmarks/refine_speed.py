"""What the v3+ refinement head adds to the network's time: ``v3`` and ``v3+`` (hard, and
band) on the same synthetic stacks, in one process, each run after a warm-up, best of three.

Usage: .venv/bin/python benchmarks/refine_speed.py [--head HEAD.pt] [--sizes 9 24]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from stackmff.api import prepare_method
from stackmff.evaluation.suites import VALIDATION_SHAPE
from stackmff.fusion.network_method import prepare_refined


def best_time(fuser, layers: np.ndarray, repeats: int = 3) -> float:
    fuser(layers)  # warm-up: kernels built, memory allocated
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fuser(layers)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--head", help="the refinement head (default: the shipped head)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[9, 24])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    height, width = VALIDATION_SHAPE
    fusers = {"v3": prepare_method("v3"), "v3-band": prepare_method("v3", blend="band"),
              "v3+": prepare_refined(head=args.head),
              "v3+-band": prepare_refined(head=args.head, blend="band")}
    for n in args.sizes:
        layers = rng.random((n, height, width, 3), dtype=np.float32)
        times = {name: best_time(fuser, layers) for name, fuser in fusers.items()}
        print(f"N={n} {height}x{width}: " + ", ".join(f"{k} {v:.2f} s" for k, v in times.items())
              + f"; v3+ / v3 = {times['v3+'] / times['v3']:.2f}, "
              f"v3+-band / v3-band = {times['v3+-band'] / times['v3-band']:.2f}")


if __name__ == "__main__":
    main()
