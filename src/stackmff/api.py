"""The public entry points: fuse a stack with a named method, save what it produced."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stackmff.classical import get_method, list_methods
from stackmff.errors import StackError
from stackmff.io import Stack, write_files_atomically
from stackmff.io.focusmap import confidence_picture, focus_map_picture
from stackmff.io.image import encode_image
from stackmff.result import FusionResult

DEFAULT_METHOD = "depthmap"
NETWORK_METHOD = "v3"
NETWORK_SUMMARY = ("StackMFF V3 network: per-pixel classification of the sharpest layer, "
                   "pixels copied (shipped weights, or --checkpoint)")
# the model that ships with the package; its card is weights/MODEL_CARD.md
SHIPPED_WEIGHTS = Path(__file__).parent / "weights" / "stackmff-v3.pt"


def method_names() -> list[str]:
    """Every method ``fuse_stack`` accepts: the network and the classical registry."""
    return [NETWORK_METHOD] + [m.name for m in list_methods()]


def network_weights(checkpoint: str | Path | None = None) -> Path:
    """The weights ``v3`` runs with: ``checkpoint`` if given, else the shipped model."""
    if checkpoint is not None:
        return Path(checkpoint)
    if SHIPPED_WEIGHTS.is_file():
        return SHIPPED_WEIGHTS
    raise StackError("method v3 needs trained weights: pass --checkpoint PATH "
                     f"(no shipped model at {SHIPPED_WEIGHTS})")


def check_method(method: str, checkpoint: str | Path | None = None) -> None:
    """Fail early, before any work, on an unknown method or a network without weights."""
    if method == NETWORK_METHOD:
        network_weights(checkpoint)
        return
    get_method(method)


def fuse_stack(stack: Stack | np.ndarray, method: str = DEFAULT_METHOD, *,
               checkpoint: str | Path | None = None, fuser=None, **fuser_options) -> FusionResult:
    """Fuse a focus stack into one all-in-focus image.

    Args:
        stack: a :class:`Stack` from :func:`load_stack`, or a float array
            ``(L, H, W[, 3])`` in [0, 1].
        method: ``"v3"`` (the network) or a classical method (see :func:`method_names`).
        checkpoint: weights for ``"v3"`` (default: the shipped model; ignored if ``fuser``
            is given).
        fuser: an already loaded :class:`stackmff.fusion.StackFuser`, to reuse across stacks.
        **fuser_options: ``device``, ``tile``, ``margin``, ``precision``, ``global_means``,
            ``native`` for a new fuser.

    Returns:
        A :class:`FusionResult` with the fused image (float32, [0, 1]) and, where the method
        has them, the focus map and confidence.
    """
    layers = stack.layers if isinstance(stack, Stack) else np.asarray(stack)
    if method == NETWORK_METHOD:
        if fuser is None:
            from stackmff.fusion import StackFuser

            fuser = StackFuser.from_checkpoint(network_weights(checkpoint), **fuser_options)
        return fuser.fuse(layers)
    return get_method(method).fuse(layers)


def index_map_path(focus_map_path: str | Path) -> Path:
    """Where the raw layer indices go next to a focus-map picture: ``<stem>_indices.png``."""
    path = Path(focus_map_path)
    return path.with_name(f"{path.stem}_indices.png")


def output_paths(output: str | Path, focus_map: str | Path | None = None,
                 confidence: str | Path | None = None) -> list[Path]:
    """Every file :func:`save_result` would write for these arguments."""
    paths = [Path(output)]
    if focus_map is not None:
        paths += [Path(focus_map), index_map_path(focus_map)]
    if confidence is not None:
        paths.append(Path(confidence))
    return paths


def save_result(result: FusionResult, stack: Stack, output: str | Path,
                focus_map: str | Path | None = None,
                confidence: str | Path | None = None) -> list[Path]:
    """Write the fused image in the stack's bit depth, and optionally its maps.

    Nothing is written if any output is one of the stack's input files, or if the method
    has no focus map / confidence and one was asked for. All files appear together
    (temporary files, then renames).

    Returns:
        The paths written.
    """
    paths = output_paths(output, focus_map, confidence)
    inputs = {p.resolve() for p in stack.paths}
    for path in paths:
        if path.resolve() in inputs:
            raise StackError(f"refusing to overwrite input file {path}")
    if len(set(p.resolve() for p in paths)) != len(paths):
        raise StackError("output paths must differ from each other")
    files = {paths[0]: encode_image(stack.to_output(result.fused), paths[0])}
    if focus_map is not None:
        if result.focus_map is None:
            raise StackError(f"method {result.method!r} produces no focus map")
        picture = focus_map_picture(result.focus_map, len(stack))
        files[Path(focus_map)] = encode_image(picture, focus_map)
        indices = index_map_path(focus_map)
        files[indices] = encode_image(result.focus_map.astype(np.uint16), indices)
    if confidence is not None:
        if result.confidence is None:
            raise StackError(f"method {result.method!r} produces no confidence map")
        files[Path(confidence)] = encode_image(confidence_picture(result.confidence), confidence)
    write_files_atomically(files)
    return list(files)
