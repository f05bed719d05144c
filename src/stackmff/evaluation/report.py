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
from stackmff.evaluation.runner import (
    BOUNDS,
    ENFUSE_FLAGS,
    OPENFOCUS_ENV,
    OPENFOCUS_ROWS,
    RunResult,
    openfocus_program,
)

PEERS = ("enfuse", "focus-stack", *OPENFOCUS_ROWS)


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


def enfuse_version() -> str:
    try:
        out = subprocess.run(["enfuse", "--version"], capture_output=True, text=True)
        return out.stdout.splitlines()[0] if out.stdout else "enfuse (version unknown)"
    except OSError:
        return "enfuse not installed"


def openfocus_version() -> str:
    """Its version, from the Python of its own virtual environment; or why it is absent."""
    program = openfocus_program()
    if program is None:
        return (f"openfocus not installed (scripts/setup_bench.sh installs it into "
                f".openfocus-venv, or set {OPENFOCUS_ENV}): no openfocus rows")
    python = Path(program).with_name("python")
    try:
        out = subprocess.run([str(python), "-c", "import importlib.metadata as m; "
                              "print(m.version('openfocus'))"], capture_output=True, text=True)
        version = out.stdout.strip() or "version unknown"
    except OSError:
        version = "version unknown"
    flags = "; ".join(f"{name}: {' '.join(f) or 'its defaults'}"
                      for name, f in OPENFOCUS_ROWS.items())
    return f"openfocus {version}, `--cpu` ({flags})"


def peer_versions() -> str:
    return (f"{enfuse_version()} (flags: {' '.join(ENFUSE_FLAGS)}); {openfocus_version()}")


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
    """Each blend of the network against the best other method of each variant (by mean
    PSNR; the network's other blends are not rivals), stack by stack: the mean gap with its
    95% confidence interval, so that a gap of a few hundredths of a dB over a dozen stacks
    reads as what it is."""
    blends = [m for m in methods if m == network or m.startswith(network + "-")]
    others = [m for m in methods if m not in blends]
    if not blends or not others:
        return []
    lines = ["| suite | variant | network | best other method | network - it (dB) | "
             "95% interval | stacks network ahead / behind |", "|---|---|---|---|---:|---|---:|"]
    for blend in blends:
        lines += _network_rows(results, others, blend)
    return lines + [""]


def scores_by_variant(results: list[RunResult]) -> dict[tuple[str, str], dict[str, dict[str, float]]]:
    """suite, variant -> method -> stack -> PSNR, in run order; a suite of several variants
    also gets an ``all`` entry that pools them (each stack named with its variant)."""
    by_variant: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    variants = defaultdict(set)
    for r in results:
        variants[r.suite].add(r.variant)
    for r in results:
        scores = by_variant.setdefault((r.suite, r.variant), defaultdict(dict))
        if not r.error and math.isfinite(r.psnr):
            scores[r.method][r.scene] = r.psnr
    for suite, names in variants.items():
        if len(names) < 2:
            continue
        pooled = by_variant.setdefault((suite, "all"), defaultdict(dict))
        for r in results:
            if r.suite == suite and not r.error and math.isfinite(r.psnr):
                pooled[r.method][f"{r.variant} {r.scene}"] = r.psnr
    return by_variant


def means_section(results: list[RunResult], methods: list[str]) -> list[str]:
    """Mean PSNR of every method (columns) on every suite and stack size (rows), the pooled
    ``all`` row of each suite included: the table a reader compares first."""
    scores = scores_by_variant(results)
    shown = [m for m in methods if any(m in s for s in scores.values())]
    if not shown:
        return []
    lines = ["| suite | variant | stacks | " + " | ".join(shown) + " |",
             "|---|---|---:|" + "---:|" * len(shown)]
    for (suite, variant), by_method in scores.items():
        stacks = max((len(v) for v in by_method.values()), default=0)
        cells = [_fmt(float(np.mean(list(by_method[m].values())))) if by_method.get(m) else "-"
                 for m in shown]
        lines.append(f"| {suite} | {variant} | {stacks} | " + " | ".join(cells) + " |")
    return lines + [""]


def _network_rows(results: list[RunResult], others: list[str], network: str) -> list[str]:
    lines = []
    by_variant = scores_by_variant(results)
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
        lines.append(f"| {suite} | {variant} | {network} | {best} | {gap.mean:+.3f} | "
                     f"{interval} | {gap.ahead} / {gap.behind} |")
    return lines


def gap_section(results: list[RunResult], peer: str = "enfuse") -> list[str]:
    """Our best method against a peer's best row (``enfuse``, ``openfocus``...) per suite:
    PSNR gap and median time ratio (whole processes), same run."""
    rows_of_peer = [m for m in PEERS if m == peer or m.startswith(peer + "-")]
    if not any(r.method in rows_of_peer and not r.error for r in results):
        return []
    lines = [f"| suite | our best method | its PSNR | best {peer} row | its PSNR | gap (dB) | "
             f"time ours / {peer} |", "|---|---|---:|---|---:|---:|---:|"]
    for suite in dict.fromkeys(r.suite for r in results):
        rows = [r for r in results if r.suite == suite and not r.error and math.isfinite(r.psnr)]
        means = defaultdict(list)
        times = defaultdict(list)
        for r in rows:
            means[r.method].append(r.psnr)
            times[r.method].append(r.seconds)
        ours = {m: np.mean(v) for m, v in means.items() if m not in PEERS and m not in BOUNDS}
        theirs = {m: np.mean(v) for m, v in means.items() if m in rows_of_peer}
        if not ours or not theirs:
            continue
        best, rival = max(ours, key=ours.get), max(theirs, key=theirs.get)
        ratio = float(np.median(times[best]) / np.median(times[rival]))
        lines.append(f"| {suite} | {best} | {ours[best]:.2f} | {rival} | {theirs[rival]:.2f} | "
                     f"{ours[best] - theirs[rival]:+.2f} | {_fmt(ratio)} |")
    return lines + [""]


def speed_section(results: list[RunResult], ours: str = "v3", peer: str = "openfocus") -> list[str]:
    """Per-stack time of our network (hard gather) and of the peer's default row, whole
    processes in the same run: the median of the per-stack ratios."""
    times: dict[tuple, dict[str, float]] = defaultdict(dict)
    for r in results:
        if r.method in (ours, peer) and not r.error and math.isfinite(r.seconds):
            times[(r.suite, r.variant, r.scene)][r.method] = r.seconds
    ratios = [t[ours] / t[peer] for t in times.values() if ours in t and peer in t]
    if not ratios:
        return []
    return [f"Per-stack time, whole processes in this run: `{ours}` / `{peer}` = "
            f"{np.median(ratios):.2f} (median over {len(ratios)} stacks; "
            f"range {min(ratios):.2f} .. {max(ratios):.2f}).", ""]


def write_report(results: list[RunResult], methods: list[str], out: Path, command: str,
                 plots: list[str], note: str = "", network: str = "v3") -> None:
    """The report; ``note`` is a paragraph put under the header (how the run differed);
    ``network``: whose blends the stack-by-stack section sets against the other methods."""
    suites = dict.fromkeys(r.suite for r in results)  # in run order, each once
    network = network_section(results, methods, network)
    if network:
        network = ["## The network against the best other method, stack by stack", "", *network]
    lines = [
        f"# Benchmarks: {', '.join(suites)}",
        "",
        f"Generated by `{command}` on {date.today()}, commit {commit()}.",
        f"Machine: {machine()}. Peers: {peer_versions()}.",
        "",
        *([note, ""] if note else []),
        "Quality: PSNR and SSIM on 8-bit BT.601 grey with scikit-image defaults (the paper's "
        "protocol), colour PSNR on 8-bit RGB, focus-map accuracy where the true map is known, "
        "Q^AB/F (no reference). Time and peak memory: the whole process of each method "
        "(`python -m stackmff fuse` or the peer program), start-up included, measured with "
        "GNU time, on the same files. Synthetic suites are rendered with the physical "
        "renderer from fixed seeds. Two bounds that no method reaches are listed with every "
        "ground-truth stack: the gather by the true focus map, and per pixel the layer "
        "closest to the truth.",
        "",
        "Network rows: `v3` is the hard gather (every pixel an input pixel), `v3-soft` the "
        "probability-weighted blend (probabilities smoothed, sigma 0.5 px), `v3-band` the "
        "gather where confident and the blend across focus-map boundaries, `v3-soft2` the "
        "soft blend with probabilities averaged over input scales 1 and 0.75.",
        "",
        "## Mean PSNR per suite and stack size (dB)",
        "",
        *means_section(results, methods + list(BOUNDS)),
        "## Our best method against enfuse",
        "",
        *(gap_section(results) or ["enfuse was not run.", ""]),
        "## Our best method against openfocus",
        "",
        *(gap_section(results, "openfocus") or ["openfocus was not run.", ""]),
        *speed_section(results),
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
