"""Whether a network method has earned the default: the bar of docs/validation.md, read from
`stackmff bench --suite out-of-domain --rows FILE` rows.

The candidate must be ahead of every classical method on each judged set (HCI, the mean over
its stacks; Devernay at both blurs; Lytro #48; the ray-traced split; brightfield on the
continuous slide), and ahead of openfocus's best setting (the one with the highest mean) on
the mean over the five sets, Devernay counted once as the mean of its two. Fluorescence is
shown beside them: the per-modality rule decides it on its own.

Usage: .venv/bin/python benchmarks/default_bar.py RIVALS.jsonl [MORE.jsonl ...]
           --candidate FILE:METHOD [--brightfield stepped]

The candidate's rows may come from another run (other weights); every rival (classical
methods, openfocus) is read from the rivals' files.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from statistics import mean

from stackmff.evaluation.runner import RunResult, read_rows

CLASSICAL = ("depthmap", "pyramid", "enfuse", "dwt", "dtcwt", "dct", "variance", "mip")
OPENFOCUS = ("openfocus", "openfocus-nomatch", "openfocus-hard")
BRIGHTFIELD = {"continuous": "continuous brightfield", "stepped": "brightfield"}


def judged_sets(brightfield: str) -> dict[str, tuple[str, str | None]]:
    """Set name -> (suite, variant or None for every variant)."""
    return {"HCI": ("hci-lightfield", None),
            "Devernay blur 5": ("devernay-office", "blur 5"),
            "Devernay blur 10": ("devernay-office", "blur 10"),
            "Lytro #48": ("lytro-epfl48", None),
            "ray-traced split": ("raytraced", None),
            BRIGHTFIELD[brightfield]: ("microscopy", BRIGHTFIELD[brightfield]),
            "fluorescence (own rule)": ("microscopy", "fluorescence")}


def set_mean(rows: list[RunResult], method: str, suite: str, variant: str | None) -> float:
    """Mean PSNR of ``method`` over the set's stacks; NaN where it has none."""
    values = [r.psnr for r in rows if r.method == method and r.suite == suite
              and (variant is None or r.variant == variant)
              and not r.error and math.isfinite(r.psnr)]
    return mean(values) if values else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rivals", type=Path, nargs="+")
    parser.add_argument("--candidate", required=True, metavar="FILE:METHOD")
    parser.add_argument("--brightfield", choices=tuple(BRIGHTFIELD), default="continuous")
    args = parser.parse_args()
    file, _, method = args.candidate.rpartition(":")
    ours = read_rows(Path(file))
    rivals = [row for path in args.rivals for row in read_rows(path)]
    sets = judged_sets(args.brightfield)
    classical = [m for m in CLASSICAL if any(r.method == m for r in rivals)]
    settings = [m for m in OPENFOCUS if any(r.method == m for r in rivals)]
    print(f"| set | {method} | best classical | gap | "
          + " | ".join(settings) + " |\n|---|---:|---|---:|" + "---:|" * len(settings))
    judged: dict[str, dict[str, float]] = {}
    ahead = True
    for name, (suite, variant) in sets.items():
        value = set_mean(ours, method, suite, variant)
        scores = {m: set_mean(rivals, m, suite, variant) for m in classical}
        scores = {m: v for m, v in scores.items() if not math.isnan(v)}
        best = max(scores, key=scores.get) if scores else None
        gap = value - scores[best] if best else math.nan
        peers = {m: set_mean(rivals, m, suite, variant) for m in settings}
        if not name.startswith("fluorescence"):
            ahead &= gap > 0
            judged[name] = {method: value, **peers}
        print(f"| {name} | {value:.2f} | {best} {scores.get(best, math.nan):.2f} | {gap:+.2f} | "
              + " | ".join(f"{v:.2f}" for v in peers.values()) + " |")

    def five_set_mean(who: str) -> float:
        devernay = mean(judged[k][who] for k in judged if k.startswith("Devernay"))
        others = [judged[k][who] for k in judged if not k.startswith("Devernay")]
        return mean([devernay, *others])

    ours_mean = five_set_mean(method)
    peer_means = {m: five_set_mean(m) for m in settings}
    best_setting = max(peer_means, key=peer_means.get)
    print(f"| mean of the five sets | {ours_mean:.3f} | | | "
          + " | ".join(f"{v:.3f}" for v in peer_means.values()) + " |")
    print(f"\nahead of every classical method on each set: {'yes' if ahead else 'no'}; "
          f"against openfocus's best setting ({best_setting}) on the mean: "
          f"{ours_mean - peer_means[best_setting]:+.3f} dB")


if __name__ == "__main__":
    main()
