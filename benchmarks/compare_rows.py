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
import json
import math
from collections import defaultdict
from pathlib import Path

from stackmff.evaluation.ranking import paired_difference


def scores(path: Path, method: str) -> dict[tuple[str, str], dict[str, float]]:
    """suite, variant -> stack -> PSNR of ``method``, the suite's pooled ``all`` included."""
    found: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row["method"] != method or row["error"] or not math.isfinite(row["psnr"]):
            continue
        found[(row["suite"], row["variant"])][row["scene"]] = row["psnr"]
        found[(row["suite"], "all")][f"{row['variant']} {row['scene']}"] = row["psnr"]
    return found


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
