"""``stackmff bench``: every method on every suite, then docs/benchmarks.md and its plots."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from stackmff.evaluation.report import write_report
from stackmff.evaluation.runner import available_methods, run_stack
from stackmff.evaluation.suites import (
    hci_stacks,
    microscopy_stacks,
    raytraced_stacks,
    real_stacks,
    synthetic_stacks,
    validation_stacks,
)
from stackmff.progress import progress

SUITES = ("stack-size", "order", "interference", "pairs", "devernay-office", "lytro-epfl48",
          "microscopy", "hci-lightfield", "raytraced")
# the stacks the physical renderer (the shipped model's training data) never made: the judge
OUT_OF_DOMAIN = ("hci-lightfield", "devernay-office", "lytro-epfl48", "raytraced", "microscopy")
# held-out scenes only, for judging a trained model; run when asked for with --suite
VALIDATION_SUITES = ("validation", "validation-order", "validation-interference")


def network_flops(sizes: list[int]) -> dict[int, float]:
    """G multiply-accumulates of the faithful network at 256x256 for each N."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from stackmff.model import StackMFFV3

    model = StackMFFV3().eval()
    flops = {}
    for n in sizes:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.rand(1, n, 1, 256, 256))
        flops[n] = counter.get_total_flops() / 2e9
    return flops


def run_bench(suites: list[str] | None, methods: list[str] | None, quick: bool, data: Path,
              out: Path, checkpoint: str | None, plots: bool = True,
              raytraced: Path = Path("runs/raytraced-validation"), head: str | None = None,
              rows_out: Path | None = None) -> Path:
    """``suites``: names, or ``out-of-domain`` for all of OUT_OF_DOMAIN; ``raytraced``: the
    folder of the ray-traced validation split (rendered there on first use); ``rows_out``: a
    JSON-lines file that gets every stack's scores as they come (to compare two runs stack by
    stack: benchmarks/compare_rows.py)."""
    names = [n for s in (suites or SUITES) for n in (OUT_OF_DOMAIN if s == "out-of-domain" else [s])]
    chosen = set(names)
    known = SUITES + VALIDATION_SUITES
    unknown = chosen - set(known)
    if unknown:
        raise ValueError(f"unknown suites: {', '.join(sorted(unknown))}; known: {', '.join(known)}")
    if plots and importlib.util.find_spec("matplotlib") is None:
        # said before the run, not after it: a missing plotting library must not lose results
        print("stackmff: warning: matplotlib is not installed; no plots "
              "(pip install -e '.[bench]')", file=sys.stderr)
        plots = False
    method_list = available_methods(methods, checkpoint, head, variants=not quick)
    stacks = []
    if chosen & set(SUITES):
        stacks += [s for s in synthetic_stacks(quick) if s.suite in chosen]
    if "microscopy" in chosen:
        stacks += list(microscopy_stacks(quick))
    if chosen & set(VALIDATION_SUITES):
        stacks += [s for s in validation_stacks() if s.suite in chosen]
    if not quick or suites:  # --quick skips the real stacks unless they are named
        stacks += [s for s in real_stacks(data) if s.suite in chosen]
        if "hci-lightfield" in chosen:
            stacks += list(hci_stacks(data))
        if "raytraced" in chosen:
            stacks += list(raytraced_stacks(raytraced))
    results, difference_sets, shown = [], [], set()
    for stack in progress(stacks, desc="bench", total=len(stacks)):
        keep = stack.suite not in shown and stack.truth is not None
        rows = run_stack(stack, method_list, keep_images=keep)
        if keep:
            shown.add(stack.suite)
            fused = {r.method: r.fused for r in rows if r.fused is not None}
            difference_sets.append((f"{stack.suite} {stack.variant} {stack.name}", stack.truth, fused))
            for r in rows:
                r.fused = None
        results += rows
        if rows_out is not None:
            with rows_out.open("a") as handle:
                handle.writelines(r.json_line() for r in rows)
        print(f"{stack.suite} / {stack.variant} / {stack.name}: "
              + ", ".join(f"{r.method} {r.psnr:.2f}" for r in rows), file=sys.stderr, flush=True)
    plot_paths = []
    if plots:
        from stackmff.evaluation.plots import write_plots

        sizes = sorted({r.layers for r in results if r.suite == "stack-size"})
        flops = network_flops(sizes) if sizes else None
        folder = out.parent / "benchmarks"
        plot_paths = [str(p.relative_to(out.parent)) for p in
                      write_plots(results, folder, flops, difference_sets)]
    command = "stackmff bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"] else "stackmff bench"
    write_report(results, [m.name for m in method_list], out, command, plot_paths)
    return out
