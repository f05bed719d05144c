"""The ``v3+`` refinement head's weights: a small self-describing file beside the network's.

Same layout as a network checkpoint (``format_version``, ``model_config`` = the head's
config, ``state_dict``, ``meta``), loaded weights-only and checked as strictly: the format
version, every config value's type and range (its sizes capped before anything is built), the
weights' names, shapes and finiteness. A network checkpoint given as a head (or the reverse)
is refused in one line.
"""

from __future__ import annotations

from pathlib import Path

import torch

from stackmff.errors import StackError
from stackmff.model.refine import HeadConfig, RefineHead
from stackmff.weights.checkpoint import (
    HEAD_KIND,
    _first_line,
    _read_payload,
    _shown,
    check_container,
    save_checkpoint,
)

KIND = HEAD_KIND
WHAT = "head file"
DAMAGED = "truncated or not a head file"
# The head's logits are V3's log-probability times exp(log_scale): beyond this the scale
# overflows or vanishes in float32 and every pixel ties (the shipped head's is 0.04).
MAX_LOG_SCALE = 20.0


def save_head(path: str | Path, head: RefineHead, meta: dict | None = None,
              extra: dict | None = None) -> None:
    """Atomically write the head (config + weights), ``meta`` and ``extra`` (optimizer state)."""
    save_checkpoint(path, head, {"kind": KIND, **(meta or {})}, extra)


def is_head_file(path: str | Path) -> bool:
    """Whether ``path`` is a readable checkpoint whose meta says it is a ``v3+`` head."""
    try:
        meta = _read_payload(Path(path), "cpu", WHAT, DAMAGED).get("meta")
    except StackError:
        return False
    return isinstance(meta, dict) and meta.get("kind") == KIND


def load_head(path: str | Path) -> tuple[RefineHead, dict]:
    """The head a file describes, in eval mode, and the file's payload: what every loader of
    a head uses (fusing, a training run's init and resume, the export script).

    Raises:
        StackError: the file is missing, unreadable, not a ``v3+`` head, or anything in it
            is malformed or out of range; one line naming the file and what is wrong.
    """
    path = Path(path)
    payload = _read_payload(path, "cpu", WHAT, DAMAGED)
    meta = payload.get("meta")
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise StackError(f"{path} is not a v3+ refinement head")
    return checked_head(path, payload).eval(), payload


def checked_head(path: Path, payload: dict) -> RefineHead:
    """The head a file's payload describes, built only once its config is known to be in
    range, loaded only once its weights are known to fit and be finite."""
    state = check_container(path, payload, WHAT)
    try:
        config = HeadConfig.from_dict(payload["model_config"])
    except (TypeError, ValueError) as exc:
        raise StackError(f"{WHAT} {path} has a bad model_config: {_first_line(exc)}") from None
    head = RefineHead(config)
    check_weights(path, state, head.state_dict())
    head.load_state_dict({k: v.float() for k, v in state.items()})
    return head


def check_weights(path: Path, state: dict, expected: dict) -> None:
    """The weights are the names and shapes the config implies, floating point and finite:
    a NaN or infinite weight would tie every pixel and give layer 0 everywhere."""
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        names = ", ".join(_shown(n) for n in (missing or extra)[:3])
        problem = "lacks the weights" if missing else "has weights its config has no place for"
        raise StackError(f"{WHAT} {path} {problem}: {names}")
    for name, value in state.items():
        if tuple(value.shape) != tuple(expected[name].shape):
            raise StackError(f"{WHAT} {path}: {name} has shape {tuple(value.shape)}, its "
                             f"config asks for {tuple(expected[name].shape)}")
        if not value.is_floating_point():
            raise StackError(f"{WHAT} {path}: {name} holds {value.dtype} values, not floats")
        if not bool(torch.isfinite(value).all()):
            raise StackError(f"{WHAT} {path}: {name} holds NaN or infinite weights")
    scale = float(state["log_scale"])
    if abs(scale) > MAX_LOG_SCALE:
        raise StackError(f"{WHAT} {path}: log_scale must be in -{MAX_LOG_SCALE:g}.."
                         f"{MAX_LOG_SCALE:g}, got {scale:g}")
