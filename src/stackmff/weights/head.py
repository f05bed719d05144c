"""The ``v3+`` refinement head's weights: a small self-describing file beside the network's.

Same layout as a network checkpoint (``format_version``, ``model_config`` = the head's
config, ``state_dict``, ``meta``), loaded weights-only; a network checkpoint given as a head
(or the reverse) is refused in one line.
"""

from __future__ import annotations

from pathlib import Path

from stackmff.errors import StackError
from stackmff.model.refine import HeadConfig, RefineHead
from stackmff.weights.checkpoint import HEAD_KIND, _first_line, _read_payload, save_checkpoint

KIND = HEAD_KIND


def save_head(path: str | Path, head: RefineHead, meta: dict | None = None,
              extra: dict | None = None) -> None:
    """Atomically write the head (config + weights), ``meta`` and ``extra`` (optimizer state)."""
    save_checkpoint(path, head, {"kind": KIND, **(meta or {})}, extra)


def is_head_file(path: str | Path) -> bool:
    """Whether ``path`` is a readable checkpoint whose meta says it is a ``v3+`` head."""
    try:
        meta = _read_payload(Path(path), "cpu").get("meta")
    except StackError:
        return False
    return isinstance(meta, dict) and meta.get("kind") == KIND


def load_head(path: str | Path) -> tuple[RefineHead, dict]:
    """The head a file describes, in eval mode, and the file's payload.

    Raises:
        StackError: the file is missing, unreadable or not a ``v3+`` head.
    """
    path = Path(path)
    payload = _read_payload(path, "cpu")
    meta = payload.get("meta")
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise StackError(f"{path} is not a v3+ refinement head")
    try:
        head = RefineHead(HeadConfig.from_dict(payload["model_config"]))
        head.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()})
    except (TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise StackError(f"{path}: a damaged v3+ head ({_first_line(exc)})") from None
    return head.eval(), payload
