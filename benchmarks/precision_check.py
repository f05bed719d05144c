"""Does bf16 (or fp16) keep the fp32 network's decisions? On the held-out validation stacks.

Usage: .venv/bin/python benchmarks/precision_check.py [--precision bf16] [--sizes 2 5 9 16 24]

Fuses every validation stack (same renderer, seeds and 8-bit files as `stackmff bench
--suite validation`) with the shipped weights in fp32 and in the other precision, in one
process, and prints per stack size: the share of pixels with the same focus map, and the mean
fused PSNR against the ground truth of both (and the largest per-stack PSNR change).
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from stackmff.api import prepare_method
from stackmff.evaluation.suites import VALIDATION_SIZES, held_out_scenes, validation_size_stacks
from stackmff.io.pixels import from_float, to_float
from stackmff.metrics.reference import psnr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp16"))
    parser.add_argument("--sizes", type=int, nargs="+", default=list(VALIDATION_SIZES),
                        choices=VALIDATION_SIZES)
    args = parser.parse_args()
    fusers = {p: prepare_method("v3", precision=p) for p in ("fp32", args.precision)}
    rows: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for stack in validation_size_stacks(held_out_scenes(), args.sizes):
        layers = np.stack([to_float(from_float(layer, stack.dtype)) for layer in stack.layers])
        results = {p: fuser(layers) for p, fuser in fusers.items()}
        same = float(np.mean(results["fp32"].focus_map == results[args.precision].focus_map))
        scores = [psnr(to_float(from_float(r.fused, stack.dtype)), stack.truth)
                  for r in results.values()]
        rows[stack.variant].append((same, *scores))
        print(stack.variant, stack.name, f"same map {same:.4%}",
              f"PSNR fp32 {scores[0]:.4f} {args.precision} {scores[1]:.4f}", flush=True)
    print(f"\nper stack size: same focus map (mean, worst); mean PSNR fp32, {args.precision}, "
          "difference; largest per-stack PSNR change")
    every = []
    for variant, values in rows.items():
        v = np.array(values)
        every.append(v)
        print(f"{variant}: {v[:, 0].mean():.4%} (worst {v[:, 0].min():.4%}); "
              f"{v[:, 1].mean():.4f} {v[:, 2].mean():.4f} {v[:, 2].mean() - v[:, 1].mean():+.4f} dB;"
              f" largest {np.abs(v[:, 2] - v[:, 1]).max():.4f} dB")
    v = np.concatenate(every)
    print(f"all: {v[:, 0].mean():.4%} same; mean PSNR change {v[:, 2].mean() - v[:, 1].mean():+.4f} dB")


if __name__ == "__main__":
    main()
