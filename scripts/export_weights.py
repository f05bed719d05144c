"""Turn a training checkpoint into a shipped file: the network's or the v3+ head's weights
without optimizer state, provenance kept.

Usage: .venv/bin/python scripts/export_weights.py runs/finetune-gpu-2/last.pt \
           src/stackmff/weights/stackmff-v3.pt
       .venv/bin/python scripts/export_weights.py runs/head/last.pt \
           src/stackmff/weights/stackmff-v3plus-head.pt

The shipped network is this export of the last segment of the training chain
(configs/finetune-gpu-2.toml), the shipped head that of a run of configs/head.toml
(docs/training.md).

A network's weights are stored in float16 (they load as float32). Before writing, the fp16
copy is checked against the original on the held-out validation stacks: the focus maps must
agree on at least 99.9% of pixels. With --float32 they are stored as trained (a candidate
that a later run continues from). A head (its checkpoint says so) stays float32: it is tiny.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from stackmff.errors import StackError
from stackmff.model import StackMFFV3
from stackmff.training.config import DataConfig
from stackmff.training.dataset import validation_set
from stackmff.weights.checkpoint import load_checkpoint, save_checkpoint
from stackmff.weights.head import is_head_file, load_head, save_head

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


def export_head(source: str, dest: str) -> None:
    """The head without optimizer state, float32, its meta kept (and its source named)."""
    head, payload = load_head(source)
    meta = {k: v for k, v in payload["meta"].items() if k != "kind"}
    meta["source"] = Path(source).name
    save_head(dest, head, meta)
    print(f"wrote {dest} ({Path(dest).stat().st_size / 1e3:.0f} KB)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("dest")
    parser.add_argument("--float32", action="store_true",
                        help="store a network as trained, not rounded to float16")
    args = parser.parse_args(argv)
    try:
        if is_head_file(args.source):
            export_head(args.source, args.dest)
            return 0
        return export_network(args.source, args.dest, args.float32)
    except StackError as exc:
        print(f"export_weights: error: {exc}", file=sys.stderr)
        return 1


def export_network(source: str, dest: str, float32: bool = False) -> int:
    """The fp16 network, written only when it keeps the focus maps of the original; or with
    ``float32`` the network as trained."""
    model, payload = load_checkpoint(source)
    meta = dict(payload["meta"])
    meta["source"] = Path(source).name
    if float32:
        meta["storage"] = "float32"
        save_checkpoint(dest, model, meta=meta)
        print(f"wrote {dest} ({Path(dest).stat().st_size / 1e6:.1f} MB)")
        return 0
    rounded = half_copy(model)
    share = agreement(model, rounded)
    print(f"fp16 weights keep the focus map on {share:.4%} of validation pixels")
    if share < MIN_AGREEMENT:
        print(f"refusing to export: below {MIN_AGREEMENT:.1%}", file=sys.stderr)
        return 1
    meta["storage"] = "float16"
    save_checkpoint(dest, rounded.half(), meta=meta)  # the very model checked above
    print(f"wrote {dest} ({Path(dest).stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
