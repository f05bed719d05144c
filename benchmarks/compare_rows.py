"""Two benchmark runs stack by stack: one method's PSNR in run B minus run A (or minus another
method of the same run), per suite and stack size, with the 95% interval of the paired
difference, so that a candidate (new weights, a new head) is judged by what the spread allows.

Usage: .venv/bin/python benchmarks/compare_rows.py A.jsonl B.jsonl --method v3+-band
           [--against-method NAME]

The rows come from `stackmff bench --rows FILE`. With --against-method, A's rows of that
method are the baseline (e.g. a candidate v3+ in B against openfocus-nomatch in A).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from stackmff.evaluation.ranking import paired_difference
from stackmff.evaluation.report import scores_by_variant
from stackmff.evaluation.runner import read_rows


def scores(path: Path, method: str) -> dict[tuple[str, str], dict[str, float]]:
    """suite, variant -> stack -> PSNR of ``method``, pooled as the report pools them."""
    rows = read_rows(path)
    return {key: by_method[method] for key, by_method in scores_by_variant(rows).items()
            if by_method.get(method)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path)
    parser.add_argument("candidate", type=Path)
    parser.add_argument("--method", required=True)
    parser.add_argument("--against-method", help="the baseline's method (default: --method)")
    args = parser.parse_args()
    before = scores(args.baseline, args.against_method or args.method)
    after = scores(args.candidate, args.method)
    print(f"| suite | variant | stacks | {args.method} B - A (dB) | 95% interval | "
          "ahead / behind |\n|---|---|---:|---:|---|---:|")
    for key in after:
        common = sorted(set(after[key]) & set(before.get(key, {})))
        if not common:
            continue
        gap = paired_difference([after[key][s] for s in common],
                                [before[key][s] for s in common])
        interval = "-" if math.isnan(gap.low) else f"{gap.low:+.3f} .. {gap.high:+.3f}"
        print(f"| {key[0]} | {key[1]} | {len(common)} | {gap.mean:+.3f} | {interval} | "
              f"{gap.ahead} / {gap.behind} |")


if __name__ == "__main__":
    main()
