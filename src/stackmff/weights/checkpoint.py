"""Self-describing checkpoints: ``{"format_version", "model_config", "state_dict", "meta"}``.

Loading uses ``torch.load(weights_only=True)``: a checkpoint cannot run code.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from stackmff.errors import StackError
from stackmff.io.atomic import write_files_atomically
from stackmff.model import ModelConfig, StackMFFV3

FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, model: StackMFFV3, meta: dict | None = None,
                    extra: dict | None = None) -> None:
    """Atomically write ``model`` (config + weights), ``meta`` (provenance) and ``extra``
    (e.g. optimizer state for resuming)."""
    payload = {
        "format_version": FORMAT_VERSION,
        "model_config": model.config.to_dict(),
        "state_dict": model.state_dict(),
        "meta": meta or {},
    }
    payload.update(extra or {})
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_files_atomically({Path(path): buffer.getvalue()})


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[StackMFFV3, dict]:
    """Rebuild the model a checkpoint describes; returns ``(model in eval mode, payload)``."""
    path = Path(path)
    if not path.is_file():
        raise StackError(f"no such checkpoint: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise StackError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(payload, dict) or "model_config" not in payload or "state_dict" not in payload:
        raise StackError(f"{path} is not a stackmff checkpoint")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise StackError(f"{path} has checkpoint format {payload['format_version']}; this "
                         f"stackmff reads up to {FORMAT_VERSION}")
    model = StackMFFV3(ModelConfig.from_dict(payload["model_config"]))
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise StackError(f"{path}: weights do not match its config ({str(exc).splitlines()[0]})") \
            from None
    return model.eval(), payload
