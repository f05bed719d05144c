"""Write docs/benchmarks.md and its plots from the benchmark results."""

from __future__ import annotations

import math
import platform
import subprocess
from collections import defaultdict
from datetime import date
from pathlib import Path

import numpy as np

from stackmff.evaluation.ranking import paired_difference, rank_methods
from stackmff.evaluation.runner import BOUNDS, RunResult


def _fmt(value: float, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def peer_versions() -> str:
    try:
        out = subprocess.run(["enfuse", "--version"], capture_output=True, text=True)
        return out.stdout.splitlines()[0] if out.stdout else "enfuse (version unknown)"
    except OSError:
        return "enfuse not installed"


def tables(results: list[RunResult], methods: list[str]) -> list[str]:
    lines = []
    by_suite: dict[str, list[RunResult]] = defaultdict(list)
    for r in results:
        by_suite[r.suite].append(r)
    for suite, rows in by_suite.items():
        lines += [f"### {suite}", "",
                  "| variant | method | PSNR (dB) | SSIM | colour PSNR (dB) | map exact | "
                  "map within 1 | Q^AB/F | time (s) | peak MB |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        variants = list(dict.fromkeys(r.variant for r in rows))
        for variant in variants:
            for method in methods + list(BOUNDS):
                picked = [r for r in rows if r.variant == variant and r.method == method]
                if not picked:
                    continue
                failed = [r for r in picked if r.error]
                if failed:
                    lines.append(f"| {variant} | {method} | failed: {failed[0].error[:60]} "
                                 "| | | | | | | |")
                    continue

                def mean(attribute, rows=picked):
                    return float(np.mean([getattr(r, attribute) for r in rows]))

                lines.append(
                    f"| {variant} | {method} | {_fmt(mean('psnr'))} | {_fmt(mean('ssim'), 4)} | "
                    f"{_fmt(mean('psnr_colour'))} | {_fmt(mean('map_exact'), 3)} | "
                    f"{_fmt(mean('map_within_one'), 3)} | {_fmt(mean('qabf'), 3)} | "
                    f"{_fmt(mean('seconds'))} | {_fmt(mean('peak_mb'), 0)} |")
        lines.append("")
    return lines


def ranking_section(results: list[RunResult], methods: list[str]) -> list[str]:
    stacks = sorted({(r.suite, r.variant, r.scene) for r in results})
    rows = []
    for key in stacks:
        row = {r.method: r.psnr for r in results
               if (r.suite, r.variant, r.scene) == key and not r.error}
        if all(m in row and math.isfinite(row[m]) for m in methods):
            rows.append([row[m] for m in methods])
    if len(rows) < 2 or len(methods) < 2:
        return ["Not enough complete stacks for a ranking.", ""]
    ranking = rank_methods(np.array(rows), methods)
    lines = [f"Over {ranking.stacks} stacks with ground truth, ranked by PSNR (1 = best). "
             f"{ranking.test} = {_fmt(ranking.statistic)}, "
             f"p = {ranking.p:.2g}; Nemenyi critical difference (alpha 0.05) = "
             f"{ranking.critical_difference:.2f}: methods whose mean ranks differ by less are "
             "not significantly different.", "",
             "| method | mean rank |", "|---|---:|"]
    lines += [f"| {m} | {r:.2f} |" for m, r in zip(ranking.methods, ranking.mean_ranks)]
    return lines + [""]


def network_section(results: list[RunResult], methods: list[str],
                    network: str = "v3") -> list[str]:
    """The network against the best other method of each variant (by mean PSNR), stack by
    stack: the mean gap with its 95% confidence interval, so that a gap of a few hundredths
    of a dB over a dozen stacks reads as what it is."""
    others = [m for m in methods if m != network]
    if network not in methods or not others:
        return []
    lines = [f"| suite | variant | best other method | {network} - it (dB) | 95% interval | "
             f"stacks {network} ahead / behind |", "|---|---|---|---:|---|---:|"]
    by_variant: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    for r in results:  # in run order: suite, variant -> method -> scene -> PSNR
        scores = by_variant.setdefault((r.suite, r.variant), defaultdict(dict))
        if not r.error and math.isfinite(r.psnr):
            scores[r.method][r.scene] = r.psnr
    for (suite, variant), scores in by_variant.items():
        scenes = set(scores.get(network, {}))
        rivals = [m for m in others if m in scores and set(scores[m]) >= scenes]
        if not scenes or not rivals:
            continue
        ordered = sorted(scenes)
        best = max(rivals, key=lambda m: np.mean([scores[m][s] for s in ordered]))
        gap = paired_difference([scores[network][s] for s in ordered],
                                [scores[best][s] for s in ordered])
        interval = "-" if math.isnan(gap.low) else f"{gap.low:+.3f} .. {gap.high:+.3f}"
        lines.append(f"| {suite} | {variant} | {best} | {gap.mean:+.3f} | {interval} | "
                     f"{gap.ahead} / {gap.behind} |")
    return lines + [""]


def gap_section(results: list[RunResult]) -> list[str]:
    """Our best method against enfuse per suite: PSNR gap and time ratio, same run."""
    if not any(r.method == "enfuse" and not r.error for r in results):
        return []
    lines = ["| suite | our best method | its PSNR | enfuse PSNR | gap (dB) | time ours / enfuse |",
             "|---|---|---:|---:|---:|---:|"]
    for suite in dict.fromkeys(r.suite for r in results):
        rows = [r for r in results if r.suite == suite and not r.error and math.isfinite(r.psnr)]
        means = defaultdict(list)
        times = defaultdict(list)
        for r in rows:
            means[r.method].append(r.psnr)
            times[r.method].append(r.seconds)
        ours = {m: np.mean(v) for m, v in means.items()
                if m not in ("enfuse", "focus-stack") and m not in BOUNDS}
        if not ours or "enfuse" not in means:
            continue
        best = max(ours, key=ours.get)
        enfuse = float(np.mean(means["enfuse"]))
        ratio = float(np.median(times[best]) / np.median(times["enfuse"]))
        lines.append(f"| {suite} | {best} | {ours[best]:.2f} | {enfuse:.2f} | "
                     f"{ours[best] - enfuse:+.2f} | {ratio:.1f} |")
    return lines + [""]


def write_report(results: list[RunResult], methods: list[str], out: Path, command: str,
                 plots: list[str]) -> None:
    suites = dict.fromkeys(r.suite for r in results)  # in run order, each once
    network = network_section(results, methods)
    if network:
        network = ["## The network against the best other method, stack by stack", "", *network]
    lines = [
        f"# Benchmarks: {', '.join(suites)}",
        "",
        f"Generated by `{command}` on {date.today()}, commit {commit()}.",
        f"Machine: {machine()}. Peers: {peer_versions()} (flags: --exposure-weight=0 "
        "--saturation-weight=0 --contrast-weight=1 --hard-mask).",
        "",
        "Quality: PSNR and SSIM on 8-bit BT.601 grey with scikit-image defaults (the paper's "
        "protocol), colour PSNR on 8-bit RGB, focus-map accuracy where the true map is known, "
        "Q^AB/F (no reference). Time and peak memory: the whole process of each method "
        "(`python -m stackmff fuse` or the peer program), start-up included, measured with "
        "GNU time, on the same files. Synthetic suites are rendered with the physical "
        "renderer from fixed seeds. Two bounds that no method reaches are listed with every "
        "ground-truth stack: the gather by the true focus map, and per pixel the layer "
        "closest to the truth.",
        "",
        "## Our best method against enfuse",
        "",
        *gap_section(results),
        "## Ranking",
        "",
        *ranking_section(results, methods),
        *network,
        "## Results per suite",
        "",
        *tables(results, methods),
    ]
    if plots:
        lines += ["## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots] + [""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
