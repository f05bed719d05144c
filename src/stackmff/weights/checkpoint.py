"""Self-describing checkpoints: ``{"format_version", "model_config", "state_dict", "meta"}``.

The one container of the network's weights and of the ``v3+`` head's (whose ``meta`` says
``kind``: :mod:`stackmff.weights.head`), shipped or written during training. Loading uses
``torch.load(weights_only=True)``: a checkpoint cannot run code.
"""

from __future__ import annotations

import io
import pickle
import re
import warnings
from pathlib import Path

import torch

from stackmff.errors import StackError
from stackmff.io.atomic import write_files_atomically
from stackmff.model import ModelConfig, StackMFFV3

FORMAT_VERSION = 1
HEAD_KIND = "v3+ refinement head"  # meta["kind"] of a head file; a network's has no kind


def save_checkpoint(path: str | Path, model: torch.nn.Module, meta: dict | None = None,
                    extra: dict | None = None) -> None:
    """Atomically write ``model`` (its ``config`` + weights: the network or the ``v3+``
    head), ``meta`` (provenance) and ``extra`` (e.g. optimizer state for resuming)."""
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


def load_checkpoint(path: str | Path,
                    map_location: str | torch.device = "cpu") -> tuple[StackMFFV3, dict]:
    """Rebuild the model a checkpoint describes; returns ``(model in eval mode, payload)``.

    The payload's structure and the config's options are checked before anything is built,
    so a malformed or hostile file ends in one StackError naming it.

    Raises:
        StackError: the file is missing, unreadable, not a stackmff checkpoint, or its
            config or weights are malformed.
    """
    path = Path(path)
    payload = _read_payload(path, map_location)
    state = check_container(path, payload, "checkpoint")
    if payload.get("meta", {}).get("kind") == HEAD_KIND:
        raise StackError(f"{path} is a v3+ refinement head, not a network checkpoint")
    try:
        config = ModelConfig.from_dict(payload["model_config"])
    except (TypeError, ValueError) as exc:
        raise StackError(f"checkpoint {path} has a bad model_config: {_first_line(exc)}") \
            from None
    model = StackMFFV3(config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise StackError(f"{path}: weights do not match its config ({_first_line(exc)})") \
            from None
    return model.eval(), payload


def check_container(path: Path, payload: dict, what: str) -> dict:
    """The checks a network checkpoint and a head file share: a known format version, a
    state_dict of named tensors, a meta table. Returns the state_dict.

    Raises:
        StackError: one line naming the file and the first thing wrong.
    """
    version = payload.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise StackError(f"{what} {path}: format_version must be a whole number, "
                         f"got {_shown(version)}")
    if version > FORMAT_VERSION:
        raise StackError(f"{path} has {what} format {version}; this "
                         f"stackmff reads up to {FORMAT_VERSION}")
    state = payload["state_dict"]
    if not isinstance(state, dict):
        raise StackError(f"{what} {path}: state_dict must map names to tensors, "
                         f"got {type(state).__name__}")
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise StackError(f"{what} {path}: state_dict must map names to tensors; "
                             f"{_shown(name)} holds {type(value).__name__}")
    if not isinstance(payload.get("meta", {}), dict):
        raise StackError(f"{what} {path}: meta must be a table, "
                         f"got {type(payload['meta']).__name__}")
    return state


def _read_payload(path: Path, map_location: str | torch.device, what: str = "checkpoint",
                  damaged: str = "the file is damaged or not a PyTorch checkpoint") -> dict:
    """The file's top-level table, loaded weights-only; every failure is one short line
    (``what`` names the kind of file, ``damaged`` says why its content cannot be read)."""
    if not path.is_file():
        raise StackError(f"no such {what}: {path}")
    try:  # read first: an error reading the disk is not a damaged file
        data = path.read_bytes()
    except OSError as exc:
        raise StackError(f"cannot read {what} {path}: {exc.strerror or _first_line(exc)}") \
            from None
    if not data:
        raise StackError(f"cannot read {what} {path}: the file is empty")
    try:
        with warnings.catch_warnings():  # torch's note on a pickle protocol is not ours
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            payload = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:  # torch reports damaged files in many exception types
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if isinstance(exc, pickle.UnpicklingError) and refused:
            raise StackError(f"cannot read {what} {path}: it holds objects other than "
                             f"tensors and plain data ({refused.group(1)}; refused for "
                             f"safety)") from None
        raise StackError(f"cannot read {what} {path}: {damaged}") from None
    if not (isinstance(payload, dict) and "model_config" in payload and "state_dict" in payload):
        raise StackError(f"{path} is not a stackmff {what}")
    return payload


def _first_line(exc: BaseException) -> str:
    """An exception's first non-empty line, short, without terminal escape codes."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = re.sub(r"\x1b\[[0-9;]*m", "", lines[0]) if lines else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
