"""The ``v3+`` refinement head's weights: a small self-describing file beside the network's.

Same layout as a network checkpoint (``format_version``, ``model_config`` = the head's
config, ``state_dict``, ``meta``), loaded weights-only; a network checkpoint given as a head
(or the reverse) is refused in one line.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from stackmff.errors import StackError
from stackmff.io.atomic import write_files_atomically
from stackmff.model.refine import HeadConfig, RefineHead
from stackmff.weights.checkpoint import FORMAT_VERSION, _first_line, _read_payload

KIND = "v3+ refinement head"


def save_head(path: str | Path, head: RefineHead, meta: dict | None = None,
              extra: dict | None = None) -> None:
    """Atomically write the head (config + weights), ``meta`` and ``extra`` (optimizer state)."""
    payload = {"format_version": FORMAT_VERSION, "model_config": head.config.to_dict(),
               "state_dict": head.state_dict(), "meta": {"kind": KIND, **(meta or {})}}
    payload.update(extra or {})
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_files_atomically({Path(path): buffer.getvalue()})


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
