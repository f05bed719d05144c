"""Turn a training checkpoint into the shipped model: fp16 weights, provenance kept.

Usage: .venv/bin/python scripts/export_weights.py runs/finetune-gpu-2/last.pt \
           src/stackmff/weights/stackmff-v3.pt

The shipped weights are this export of the last segment of the training chain
(configs/finetune-gpu-2.toml; docs/training.md).

The optimizer state is dropped and the weights are stored in float16 (they load as float32).
Before writing, the fp16 copy is checked against the original on the held-out validation
stacks: the focus maps must agree on at least 99.9% of pixels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from stackmff.model import StackMFFV3
from stackmff.training.config import DataConfig
from stackmff.training.dataset import validation_set
from stackmff.weights.checkpoint import load_checkpoint, save_checkpoint

MIN_AGREEMENT = 0.999


def half_copy(model: StackMFFV3) -> StackMFFV3:
    """The model with every floating-point tensor rounded through float16."""
    rounded = StackMFFV3(model.config).eval()
    state = {k: v.half().float() if v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    rounded.load_state_dict(state)
    return rounded


@torch.no_grad()
def agreement(a: StackMFFV3, b: StackMFFV3) -> float:
    same, total = 0, 0
    for stack, _ in validation_set(DataConfig(), 12, 192):
        x = torch.from_numpy(stack)[None, :, None]
        same += int((a(x).logits.argmax(1) == b(x).logits.argmax(1)).sum())
        total += stack.shape[1] * stack.shape[2]
    return same / total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("dest")
    args = parser.parse_args()
    model, payload = load_checkpoint(args.source)
    rounded = half_copy(model)
    share = agreement(model, rounded)
    print(f"fp16 weights keep the focus map on {share:.4%} of validation pixels")
    if share < MIN_AGREEMENT:
        print(f"refusing to export: below {MIN_AGREEMENT:.1%}", file=sys.stderr)
        return 1
    meta = dict(payload["meta"])
    meta["source"] = Path(args.source).name
    meta["storage"] = "float16"
    save_checkpoint(args.dest, rounded.half(), meta=meta)  # the very model checked above
    print(f"wrote {args.dest} ({Path(args.dest).stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
