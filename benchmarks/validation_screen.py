"""Screen candidate weights on the held-out validation stacks in one process, in minutes.

Usage: .venv/bin/python benchmarks/validation_screen.py CHECKPOINT [CHECKPOINT ...]
           [--sizes 2 5] [--method depthmap]

`stackmff bench --suite validation` fuses every stack as its own process and prints PSNRs
rounded to two decimals, which cannot separate candidates that differ by a few thousandths
of a dB. This fuses the same stacks (same renderer, seeds and 8-bit files) in-process and
prints unrounded mean PSNRs per stack size, per scene and on average, and each checkpoint's
mean gap to the classical method with its 95% confidence interval over the scenes.
CHECKPOINT may be `shipped` for the packaged weights. Needs scripts/setup_training.sh for the
Debian photos.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from stackmff.api import fuse_stack, prepare_method
from stackmff.errors import StackError
from stackmff.evaluation.ranking import paired_difference
from stackmff.evaluation.suites import VALIDATION_SIZES, held_out_scenes, validation_size_stacks
from stackmff.io.pixels import from_float, to_float
from stackmff.metrics.reference import psnr


def _score(result, stack) -> float:
    """PSNR of a fused result as the benchmark sees it: written at the stack's bit depth."""
    return psnr(to_float(from_float(result.fused, stack.dtype)), stack.truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(VALIDATION_SIZES),
                        choices=VALIDATION_SIZES)
    parser.add_argument("--method", default="depthmap", help="classical method to compare with")
    args = parser.parse_args()
    try:
        fusers = {name: prepare_method("v3", checkpoint=None if name == "shipped" else name)
                  for name in args.checkpoints}
    except StackError as error:
        parser.error(str(error))
    scores: dict[str, list[dict[str, float]]] = defaultdict(list)
    for stack in validation_size_stacks(held_out_scenes(), args.sizes):
        layers = np.stack([to_float(from_float(layer, stack.dtype)) for layer in stack.layers])
        row = {args.method: _score(fuse_stack(layers, args.method), stack)}
        for name, fuser in fusers.items():
            row[name] = _score(fuser(layers), stack)
        scores[stack.variant].append(row)
        print(stack.variant, stack.name,
              "  ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
    print(f"\nmean PSNR (dB) over {len(next(iter(scores.values())))} scenes")
    for variant, rows in scores.items():
        means = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        print(variant, "  ".join(f"{k} {v:.4f}" for k, v in means.items()))
        for name in fusers:
            gap = paired_difference([r[name] for r in rows], [r[args.method] for r in rows])
            print(f"    {name} - {args.method}: {gap.mean:+.4f} dB, 95% interval "
                  f"{gap.low:+.4f} .. {gap.high:+.4f}, ahead on {gap.ahead}, behind on {gap.behind}")


if __name__ == "__main__":
    main()
