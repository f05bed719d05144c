"""Does a change that moves the network's results keep its decisions? On every validation
suite, with intervals.

Usage: .venv/bin/python benchmarks/agreement.py CHANGE [CHANGE ...] [--suites ...]
       [--data ../shared/data] [--out FILE]

CHANGE is one of:
  bf16    ``v3`` in fp32 against ``--precision bf16``
  onednn  ``v3`` with its convolutions as PyTorch picks them (``STACKMFF_ONEDNN=0``) against
          the oneDNN calls with fused GELUs (the default)
  head    ``v3+`` with the head's straightforward pass (``RefineHead.forward``) against its
          inference pass (``stackmff.runtime.refine_inference``, the default)
  head-kernel  ``v3+`` with the inference pass's convolutions in PyTorch
          (``STACKMFF_NATIVE_HEAD=0``) against the C kernel (the default)

Each stack of each suite (the project's own held-out validation, its order and interference
tests, and the out-of-domain sets: HCI light fields, Devernay, Lytro, the ray-traced split,
microscopy) is quantised to its files' bit depth and fused both ways in one process. Per
suite: the share of pixels with the same focus map (mean, worst stack), the mean PSNR of
both, and the paired PSNR and SSIM differences (after minus before) with their 95%
intervals (t over stacks).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from scipy import stats

from stackmff.api import prepare_method
from stackmff.evaluation.suites import (
    BenchStack,
    hci_stacks,
    microscopy_stacks,
    raytraced_stacks,
    real_stacks,
    validation_stacks,
)
from stackmff.io.pixels import from_float, to_float
from stackmff.metrics.reference import psnr, ssim

SUITES = ("validation", "validation-order", "validation-interference", "hci-lightfield",
          "devernay-office", "lytro-epfl48", "raytraced", "microscopy")


def straightforward_head(fuser):
    """``fuser`` (a v3+ fuser) with its head run as ``RefineHead.forward`` on the whole
    window: the pass the head was trained with."""
    import torch

    from stackmff.fusion.network_method import head_weights
    from stackmff.fusion.predictor import StackFuser
    from stackmff.weights.head import load_head

    head = load_head(head_weights(None))[0].eval()

    def logits(grey, means=None):
        base = StackFuser.logits(fuser, grey, means).float()
        with torch.inference_mode():
            return head(base, torch.from_numpy(np.ascontiguousarray(grey, np.float32)))

    fuser.logits = logits
    return fuser


def with_environment(name: str, value: str, make: Callable):
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        return make()
    finally:
        if before is None:
            del os.environ[name]
        else:
            os.environ[name] = before


CHANGES = {  # name: (before, after), each making a prepared fuser
    "bf16": (lambda: prepare_method("v3"), lambda: prepare_method("v3", precision="bf16")),
    "onednn": (lambda: with_environment("STACKMFF_ONEDNN", "0", lambda: prepare_method("v3")),
               lambda: prepare_method("v3")),
    "head": (lambda: straightforward_head(prepare_method("v3+")), lambda: prepare_method("v3+")),
    "head-kernel": (lambda: with_environment("STACKMFF_NATIVE_HEAD", "0",
                                             lambda: prepare_method("v3+")),
                    lambda: prepare_method("v3+")),
}


def stacks(suites: list[str], data: Path) -> Iterator[BenchStack]:
    for stack in validation_stacks():
        if stack.suite in suites:
            yield stack
    if "hci-lightfield" in suites:
        yield from hci_stacks(data)
    yield from (s for s in real_stacks(data) if s.suite in suites)
    if "raytraced" in suites:
        yield from raytraced_stacks(Path("runs/raytraced-validation"))
    if "microscopy" in suites:
        yield from microscopy_stacks()


def compare(change: str, suites: list[str], data: Path) -> list[str]:
    before, after = (make() for make in CHANGES[change])
    rows: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for stack in stacks(suites, data):
        layers = np.stack([to_float(from_float(layer, stack.dtype)) for layer in stack.layers])
        old, new = before(layers), after(layers)
        same = float(np.mean(old.focus_map == new.focus_map))
        fused = [to_float(from_float(r.fused, stack.dtype)) for r in (old, new)]
        scores = [metric(f, stack.truth) for metric in (psnr, ssim) for f in fused]
        rows[stack.suite].append((same, *scores))
        print(change, stack.suite, stack.variant, stack.name, f"same {same:.4%}",
              f"PSNR {scores[0]:.4f} -> {scores[1]:.4f}", file=sys.stderr, flush=True)
    lines = [f"**{change}**", "",
             "| suite | stacks | same focus map (mean) | worst stack | mean PSNR before | after "
             "| PSNR difference [95% interval] | SSIM difference [95% interval] |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for suite, values in rows.items():
        v = np.array(values)
        lines.append(f"| {suite} | {len(v)} | {v[:, 0].mean():.3%} | {v[:, 0].min():.3%} | "
                     f"{v[:, 1].mean():.3f} | {v[:, 2].mean():.3f} | "
                     f"{_interval(v[:, 2] - v[:, 1], 4)} | {_interval(v[:, 4] - v[:, 3], 5)} |")
    return [*lines, ""]


def _interval(diff: np.ndarray, digits: int) -> str:
    """Mean of paired differences and its 95% t interval over the stacks."""
    half = (stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
            if len(diff) > 1 else float("nan"))
    mean = diff.mean()
    return f"{mean:+.{digits}f} [{mean - half:+.{digits}f}, {mean + half:+.{digits}f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("changes", nargs="+", choices=CHANGES)
    parser.add_argument("--suites", nargs="+", choices=SUITES, default=list(SUITES))
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, help="also write the tables here")
    args = parser.parse_args()
    tables = []
    for change in args.changes:
        tables += compare(change, args.suites, args.data)
        print("\n".join(tables[-len(tables):]), flush=True)
        if args.out:
            args.out.write_text("\n".join(tables) + "\n")


if __name__ == "__main__":
    main()
