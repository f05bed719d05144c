"""``stackmff regather``, files in and files out: the fused image of a stack and an index map
edited in any image editor, and the confidence carried over with 0 where the map was edited."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stackmff.errors import StackError
from stackmff.io import expand_inputs, load_stack, write_files_atomically
from stackmff.io.focusmap import read_confidence_picture, read_index_map
from stackmff.outputs import INDICES, MeshOptions, OutputPlan, Products, Target, indices_path
from stackmff.retouch import check_focus_map, prefer_sharp, regather_edit
from stackmff.retouch.ties import check_side


def regather_files(inputs: str | Path | Sequence[str | Path], focus_map: str | Path,
                   output: str | Path, *, confidence: str | Path | None = None,
                   original_map: str | Path | None = None,
                   confidence_out: str | Path | None = None, prefer: str | None = None,
                   mesh: str | Path | None = None, mesh_faces: int | None = None,
                   z_step: str | float | None = None,
                   pixel_size: str | float | None = None) -> list[Path]:
    """Files in, files out: the fused image of the stack and an edited index map.

    The map is the ``<stem>_indices.png`` that ``stackmff fuse --focus-map`` writes (0-based
    layer indices), edited in any image editor. The inputs must be those the map was made
    from: a map from a fuse with registration refers to the aligned layers, so write those
    with ``stackmff align`` and fuse and regather them. The output has the stack's bit depth
    and channels. With ``confidence`` (the fuse's confidence picture) and ``original_map``
    (the unedited indices), the confidence is written to ``confidence_out``, 0 where the map
    was edited. Everything is checked before anything is written, and the outputs appear
    together.

    ``prefer`` (``"near"`` or ``"far"``) moves each pixel to the nearest (farthest) layer
    at least half as sharp as its sharpest (:mod:`stackmff.retouch.ties`), except where the
    map was edited when ``original_map`` says where. ``mesh`` also writes the surface of the
    map (as :func:`stackmff.fuse_files`; the edited pixels count as sure).

    Returns:
        The paths written.

    Raises:
        StackError: a map of another size, an index naming a missing layer, a colour picture
            instead of the indices, an output that is an input, or unreadable files.
    """
    given = (confidence is not None, original_map is not None, confidence_out is not None)
    if any(given) and not all(given):
        raise StackError("carrying the confidence over needs all three of --confidence (the "
                         "fuse's confidence), --original-map (the unedited indices) and "
                         "--confidence-out")
    inputs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    paths = expand_inputs(inputs)
    if not paths:
        raise StackError(f"no images found in {', '.join(map(str, inputs))}")
    sources = [*paths, *(Path(p) for p in (focus_map, confidence, original_map) if p)]
    check_side(prefer)
    plan = OutputPlan.of(output, confidence=confidence_out, mesh=mesh,
                         mesh_options=MeshOptions.of(mesh_faces, z_step, pixel_size))
    plan.check(Target(inputs=tuple(sources)))
    edited = read_index_map(focus_map, _raw_map_hint(focus_map))
    stack = load_stack(paths)
    size = stack.layers.shape[1:3]
    _check_index_map(edited, len(stack), size, focus_map)
    decided = kept = None
    if confidence_out is not None:
        original = read_index_map(original_map, _raw_map_hint(original_map))
        _check_index_map(original, len(stack), size, original_map)
        kept = read_confidence_picture(confidence, size)
        decided = edited != original
    if prefer is not None:
        preferred = prefer_sharp(stack.layers, edited, prefer, keep=decided)
        decided = preferred != edited if decided is None else decided | (preferred != edited)
        edited = preferred
    fused, kept = regather_edit(stack.layers, edited, decided, kept)
    # the mesh: where a person (or --prefer) chose, the layer is sure
    sure = None if kept is None else np.where(decided, np.float32(1), kept)
    files = plan.encode(Products(stack.to_output(fused), [edited.astype(np.uint16)],
                                 None if kept is None else [kept], len(stack), "regather",
                                 surface_confidences=None if sure is None else [sure]))
    write_files_atomically(files)
    return list(files)


def _raw_map_hint(path: str | Path) -> str:
    """The raw indices a user meant when they gave the focus-map picture ``path``."""
    path = Path(path)
    return f"<stem>{INDICES}.png" if path.stem.endswith(INDICES) else indices_path(path).name


def _check_index_map(index_map: np.ndarray, n_layers: int, size: tuple[int, int],
                   path: str | Path) -> None:
    """An index map read from ``path`` fits the stack: its size, then its indices."""
    (height, width), (map_h, map_w) = size, index_map.shape
    if (map_h, map_w) == (height, width):
        try:
            check_focus_map(index_map, n_layers)
        except StackError as exc:
            raise StackError(f"{path}: {exc}") from None
        return
    if map_h == height and map_w > width:
        raise StackError(f"{path} is {map_w}x{map_h}, wider than the stack's {width}x{height}: "
                         f"is it the focus-map picture with its colour bar? Use "
                         f"{_raw_map_hint(path)}")
    raise StackError(f"{path} is {map_w}x{map_h} but the stack's layers are {width}x{height}; "
                     "regather needs the inputs the map was made from (for a fuse with "
                     "--align, the layers written by 'stackmff align')")


