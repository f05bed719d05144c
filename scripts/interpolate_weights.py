"""Weights between two networks of one lineage: ``share`` of the first plus the rest of the
second, tensor by tensor (BatchNorm statistics included).

A fine-tune that gains on one kind of data and loses on another (out of domain against the
training renderer's own stacks) can be pulled part of the way back towards the weights it
started from; both must have the same model config.

Usage: .venv/bin/python scripts/interpolate_weights.py src/stackmff/weights/stackmff-v3.pt \
           candidates/stackmff-v3-plateaus.pt --share 0.75 -o runs/interp/q75.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stackmff.errors import StackError
from stackmff.weights.checkpoint import load_checkpoint, save_checkpoint


def interpolate(first: Path, second: Path, share: float, out: Path) -> None:
    a, payload_a = load_checkpoint(first)
    b, payload_b = load_checkpoint(second)
    if payload_a["model_config"] != payload_b["model_config"]:
        raise StackError(f"{first} and {second} have different model configs")
    state_a, state_b = a.state_dict(), b.state_dict()
    a.load_state_dict({k: share * v + (1 - share) * state_b[k] if v.is_floating_point()
                       else state_b[k] for k, v in state_a.items()})
    save_checkpoint(out, a, meta={"interpolated": {"first": str(first), "second": str(second),
                                                   "share_of_first": share}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--share", type=float, required=True,
                        help="weight of the first network, 0 to 1")
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        if not 0 <= args.share <= 1:
            raise StackError(f"--share must be from 0 to 1, got {args.share}")
        if args.out.exists():
            raise StackError(f"{args.out} exists; choose another name")
        interpolate(args.first, args.second, args.share, args.out)
    except StackError as exc:
        sys.exit(f"interpolate_weights: {exc}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
