"""Benchmark plots (matplotlib, installed with the ``bench`` extra)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from stackmff.evaluation.runner import RunResult


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _by_n(results, suite, attribute):
    table = defaultdict(lambda: defaultdict(list))
    for r in results:
        if r.suite == suite and not r.error:
            table[r.method][r.layers].append(getattr(r, attribute))
    return {m: (sorted(v), [float(np.mean(v[n])) for n in sorted(v)]) for m, v in table.items()}


def write_plots(results: list[RunResult], folder: Path, flops: dict[int, float] | None,
                difference_sets: list[tuple[str, np.ndarray, dict[str, np.ndarray]]]) -> list[Path]:
    """Write the plots; returns their paths."""
    plt = _pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    written = []

    def save(figure, name):
        path = folder / name
        figure.tight_layout()
        figure.savefig(path, dpi=90)
        plt.close(figure)
        written.append(path)

    for attribute, label, name in (("psnr", "PSNR (dB)", "psnr_vs_n.png"),
                                   ("seconds", "time per stack (s)", "time_vs_n.png")):
        figure, axis = plt.subplots(figsize=(6, 4))
        for method, (ns, values) in _by_n(results, "stack-size", attribute).items():
            axis.plot(ns, values, marker="o", label=method)
        axis.set_xlabel("layers N")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
        save(figure, name)
    if flops:
        figure, axis = plt.subplots(figsize=(5, 3.5))
        ns = sorted(flops)
        axis.plot(ns, [flops[n] for n in ns], marker="o")
        axis.set_xlabel("layers N")
        axis.set_ylabel("G multiply-accumulates (256x256)")
        axis.set_title("StackMFF V3 network cost")
        axis.grid(alpha=0.3)
        save(figure, "flops_vs_n.png")
    for suite, name in (("order", "order.png"), ("interference", "interference.png")):
        rows = [r for r in results if r.suite == suite and not r.error]
        if not rows:
            continue
        variants = list(dict.fromkeys(r.variant for r in rows))
        methods = list(dict.fromkeys(r.method for r in rows))
        figure, axis = plt.subplots(figsize=(7, 3.5))
        width = 0.8 / len(methods)
        for i, method in enumerate(methods):
            values = [np.mean([r.psnr for r in rows if r.method == method and r.variant == v])
                      for v in variants]
            axis.bar(np.arange(len(variants)) + i * width, values, width, label=method)
        axis.set_xticks(np.arange(len(variants)) + 0.4 - width / 2, variants, fontsize=8)
        axis.set_ylabel("PSNR (dB)")
        axis.set_ylim(bottom=min(r.psnr for r in rows) - 2)
        axis.legend(fontsize=7, ncol=4)
        save(figure, name)
    for title, truth, fused in difference_sets:
        methods = list(fused)
        figure, axes = plt.subplots(1, len(methods), figsize=(2.4 * len(methods), 2.4))
        for axis, method in zip(np.atleast_1d(axes), methods):
            difference = np.abs(fused[method] - truth)
            difference = difference.mean(axis=-1) if difference.ndim == 3 else difference
            axis.imshow(difference, cmap="magma", vmin=0, vmax=0.15)
            axis.set_title(method, fontsize=8)
            axis.axis("off")
        figure.suptitle(f"|fused - truth|: {title}", fontsize=9)
        save(figure, f"difference_{title.replace(' ', '_').replace('/', '_')}.png")
    return written
