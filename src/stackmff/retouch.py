"""Retouching by re-gathering: edit the focus map, then gather the stack again.

A selection method's fused image is fully described by its stack and its focus map
(``fused[y, x] = layers[focus_map[y, x], y, x]``, the paper's fidelity). A retouch is therefore
an edit of the map followed by a re-gather: it stays exact (every pixel is still copied from
one layer, nothing is blended or invented), and the map still says where each pixel came from.
The confidence is the method's certainty in its own choice, so it is 0 wherever a person chose
instead.

"Near" and "far" assume the usual stack order, from near focus (layer 0) to far focus (the
last layer); say ``order="far-to-near"`` for a stack ordered the other way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from stackmff.errors import StackError
from stackmff.io import Stack, expand_inputs, load_stack, write_files_atomically
from stackmff.io.focusmap import (
    confidence_picture,
    indices_name,
    read_confidence_picture,
    read_index_map,
)
from stackmff.io.image import encode_image
from stackmff.result import FusionResult
from stackmff.stack_ops import check_layers, gather

Side = Literal["near", "far"]
Order = Literal["near-to-far", "far-to-near"]


def regather(stack: Stack | np.ndarray, focus_map: np.ndarray) -> np.ndarray:
    """The fused image that a focus map selects from a stack.

    Args:
        stack: a :class:`~stackmff.Stack`, or a float array ``(L, H, W[, 3])``.
        focus_map: ``(H, W)`` integer layer indices, 0-based.

    Returns:
        ``(H, W[, 3])`` float32: each pixel copied from the layer the map names.

    Raises:
        StackError: the stack or map has the wrong shape, or the map names a layer the stack
            does not have.
    """
    layers = _layers_of(stack)
    return gather(layers, check_focus_map(focus_map, len(layers), layers.shape[1:3]))


def check_focus_map(focus_map: np.ndarray, n_layers: int | None = None,
                    size: tuple[int, int] | None = None) -> np.ndarray:
    """Validate a focus map: 2-D, integer, the stack's ``(H, W)``, indices in range.

    Raises:
        StackError: one line naming what is wrong (for an index: which, where, and how many
            layers there are).
    """
    focus_map = np.asarray(focus_map)
    if focus_map.ndim != 2:
        raise StackError(f"a focus map must be 2-D (H, W), got shape {focus_map.shape}")
    if not np.issubdtype(focus_map.dtype, np.integer):
        raise StackError(f"a focus map must hold integer layer indices, got {focus_map.dtype}")
    if size is not None and focus_map.shape != tuple(size):
        raise StackError(f"the focus map is {focus_map.shape[1]}x{focus_map.shape[0]} but the "
                         f"stack's layers are {size[1]}x{size[0]}")
    if focus_map.size and focus_map.min() < 0:
        raise StackError(f"the focus map names layer {int(focus_map.min())}; layers are "
                         "numbered from 0")
    if n_layers is not None and focus_map.size and focus_map.max() >= n_layers:
        top = int(focus_map.max())
        y, x = np.unravel_index(int(np.argmax(focus_map)), focus_map.shape)
        raise StackError(f"the focus map names layer {top} (first at x={x}, y={y}), but the "
                         f"stack has {n_layers} layers (0-{n_layers - 1})")
    return focus_map


def paint(focus_map: np.ndarray, mask: np.ndarray, layer: int,
          n_layers: int | None = None) -> np.ndarray:
    """A new focus map that takes ``layer`` wherever ``mask`` is true.

    Args:
        focus_map: ``(H, W)`` integer layer indices.
        mask: ``(H, W)``; true (non-zero) where the layer is painted.
        layer: the 0-based layer to paint with.
        n_layers: the stack's number of layers, to check ``layer`` against (recommended).

    Returns:
        The edited copy; ``focus_map`` itself is not changed.

    Raises:
        StackError: a mask of another shape, or a layer out of range.
    """
    focus_map = check_focus_map(focus_map, n_layers)
    mask = _check_mask(mask, focus_map.shape, "mask")
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
        raise StackError(f"the layer to paint must be an integer index, got {layer!r}")
    if layer < 0 or (n_layers is not None and layer >= n_layers):
        known = f"the stack has {n_layers} layers (0-{n_layers - 1})" if n_layers else \
            "layers are numbered from 0"
        raise StackError(f"cannot paint layer {layer}: {known}")
    painted = focus_map.astype(np.promote_types(focus_map.dtype, np.min_scalar_type(layer)))
    painted[mask] = layer
    return painted


def prefer(focus_map: np.ndarray, confidence: np.ndarray | None, region: np.ndarray,
           side: Side = "near", *, probabilities: np.ndarray | None = None,
           min_confidence: float = 0.5, min_ratio: float = 0.5, window: int = 9,
           order: Order = "near-to-far") -> np.ndarray:
    """A new focus map that, inside ``region``, takes the nearest (or farthest) confident layer.

    This is "prefer the near frame": around a near object's edges, far detail bleeding through
    (a halo) gives way to the near object's layer, or the other way round. Which layers count
    as *confident* at a pixel depends on what is known:

    - With ``probabilities`` (``(L, H, W)``: the network's per-layer probabilities, or any
      per-layer focus measure, higher = sharper), a layer is a candidate at a pixel where its
      value is at least ``min_ratio`` times the pixel's highest value; the pixel takes the
      nearest (farthest) candidate.
    - Otherwise only the winning layer's confidence is known, so the rule is a neighbourhood
      one: a pixel's candidates are the layers the map chose anywhere in the ``window`` x
      ``window`` square around it (outside ``region`` too) where ``confidence`` is at least
      ``min_confidence``; the pixel takes the nearest (farthest) of them. A pixel with no
      candidate in its window keeps its layer.

    "Near" is layer 0 when ``order="near-to-far"`` (the default), the last layer when
    ``order="far-to-near"``. Pixels outside ``region`` never change.

    Args:
        focus_map: ``(H, W)`` integer layer indices.
        confidence: ``(H, W)`` the method's confidence in [0, 1]; may be ``None`` when
            ``probabilities`` is given.
        region: ``(H, W)``; true (non-zero) where the preference applies.
        side: ``"near"`` or ``"far"``.
        probabilities: optional ``(L, H, W)`` per-layer probabilities or focus measures.
        min_confidence: the neighbourhood rule's confidence threshold.
        min_ratio: the per-layer rule's threshold, relative to the pixel's best layer.
        window: the neighbourhood rule's square size in pixels (odd, at least 1).
        order: how the stack is ordered, ``"near-to-far"`` or ``"far-to-near"``.

    Returns:
        The edited copy; ``focus_map`` itself is not changed.

    Raises:
        StackError: shapes that disagree, or an option out of range.
    """
    if side not in ("near", "far"):
        raise StackError(f"side must be 'near' or 'far', got {side!r}")
    if order not in ("near-to-far", "far-to-near"):
        raise StackError(f"order must be 'near-to-far' or 'far-to-near', got {order!r}")
    lowest = (side == "near") == (order == "near-to-far")
    focus_map = check_focus_map(focus_map)
    region = _check_mask(region, focus_map.shape, "region")
    if probabilities is not None:
        chosen, found = _by_probabilities(probabilities, focus_map, min_ratio, lowest)
    elif confidence is not None:
        confidence = _check_confidence(confidence, focus_map.shape)
        chosen, found = _by_neighbourhood(focus_map, confidence >= min_confidence, window,
                                          lowest)
    else:
        raise StackError("prefer needs the confidence map or the per-layer probabilities")
    change = region & found
    top = int(chosen[change].max(initial=0))
    preferred = focus_map.astype(np.promote_types(focus_map.dtype, np.min_scalar_type(top)))
    preferred[change] = chosen[change]
    return preferred


def _by_probabilities(probabilities: np.ndarray, focus_map: np.ndarray, min_ratio: float,
                      lowest: bool) -> tuple[np.ndarray, np.ndarray]:
    probabilities = np.asarray(probabilities, np.float32)
    if probabilities.ndim != 3 or probabilities.shape[1:] != focus_map.shape:
        raise StackError(f"probabilities must be (L, H, W) with (H, W) = {focus_map.shape}, "
                         f"got {probabilities.shape}")
    if not 0.0 <= min_ratio <= 1.0:
        raise StackError(f"min_ratio must be in [0, 1], got {min_ratio}")
    check_focus_map(focus_map, probabilities.shape[0])
    best = probabilities.max(axis=0)
    candidate = (probabilities >= min_ratio * best) & (best > 0)
    if not lowest:
        candidate = candidate[::-1]
    first = np.argmax(candidate, axis=0)
    chosen = first if lowest else probabilities.shape[0] - 1 - first
    return chosen, candidate.any(axis=0)


def _by_neighbourhood(focus_map: np.ndarray, confident: np.ndarray, window: int,
                      lowest: bool) -> tuple[np.ndarray, np.ndarray]:
    from scipy import ndimage  # here, so that `import stackmff` stays light

    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) \
            or window < 1 or window % 2 == 0:
        raise StackError(f"window must be an odd number of pixels >= 1, got {window!r}")
    values = focus_map.astype(np.int64)
    if lowest:
        none = int(values.max(initial=0)) + 1
        chosen = ndimage.minimum_filter(np.where(confident, values, none), size=window,
                                        mode="constant", cval=none)
    else:
        none = -1
        chosen = ndimage.maximum_filter(np.where(confident, values, none), size=window,
                                        mode="constant", cval=none)
    return chosen, chosen != none


@dataclass(frozen=True)
class Retouch:
    """A stack, its focus map, its confidence, and the fused image they make, kept consistent.

    Every edit returns a new ``Retouch`` whose fused image is the gather of its edited map, and
    whose confidence is 0 where a person decided: the whole painted mask, and the pixels whose
    layer ``prefer`` changed.

    Attributes:
        layers: ``(L, H, W[, 3])`` float32, the stack.
        focus_map: ``(H, W)`` integer layer indices.
        confidence: ``(H, W)`` float32 in [0, 1], or ``None`` where the method had none.
        fused: ``(H, W[, 3])`` float32, always ``regather(layers, focus_map)``.
    """

    layers: np.ndarray
    focus_map: np.ndarray
    confidence: np.ndarray | None
    fused: np.ndarray

    @classmethod
    def start(cls, stack: Stack | np.ndarray, focus_map: np.ndarray,
              confidence: np.ndarray | None = None) -> Retouch:
        """Begin retouching from a stack and a focus map (and, if known, the confidence).

        Raises:
            StackError: shapes that disagree, or a map naming a layer the stack lacks.
        """
        layers = _layers_of(stack)
        focus_map = check_focus_map(focus_map, len(layers), layers.shape[1:3]).copy()
        if confidence is not None:
            confidence = _check_confidence(confidence, focus_map.shape).copy()
        return cls(layers, focus_map, confidence, gather(layers, focus_map))

    @classmethod
    def from_result(cls, stack: Stack | np.ndarray, result: FusionResult) -> Retouch:
        """Begin retouching a fusion result. The fused image becomes the exact gather of the
        result's map, whatever blend made the result.

        Raises:
            StackError: the method made no focus map.
        """
        if result.focus_map is None:
            raise StackError(f"method {result.method!r} produces no focus map to retouch")
        return cls.start(stack, result.focus_map, result.confidence)

    def paint(self, mask: np.ndarray, layer: int) -> Retouch:
        """Take ``layer`` wherever ``mask`` is true; the confidence there becomes 0."""
        focus_map = paint(self.focus_map, mask, layer, len(self.layers))
        return self._edited(focus_map, np.asarray(mask, bool))

    def prefer(self, region: np.ndarray, side: Side = "near", **options) -> Retouch:
        """Inside ``region``, take the nearest (farthest) confident layer: see :func:`prefer`,
        whose keyword options this passes on. The confidence becomes 0 where the layer
        changed."""
        focus_map = prefer(self.focus_map, self.confidence, region, side, **options)
        return self._edited(focus_map, focus_map != self.focus_map)

    def _edited(self, focus_map: np.ndarray, decided: np.ndarray) -> Retouch:
        confidence = None
        if self.confidence is not None:
            confidence = self.confidence.copy()
            confidence[decided] = 0.0
        return dataclasses.replace(self, focus_map=focus_map, confidence=confidence,
                                   fused=gather(self.layers, focus_map))


def regather_files(inputs: str | Path | Sequence[str | Path], focus_map: str | Path,
                   output: str | Path, *, confidence: str | Path | None = None,
                   original_map: str | Path | None = None,
                   confidence_out: str | Path | None = None) -> list[Path]:
    """Files in, files out: the fused image of the stack and an edited index map.

    The map is the ``<stem>_indices.png`` that ``stackmff fuse --focus-map`` writes (0-based
    layer indices), edited in any image editor. The inputs must be those the map was made
    from: a map from a fuse with registration refers to the aligned layers, so write those
    with ``stackmff align`` and fuse and regather them. The output has the stack's bit depth
    and channels. With ``confidence`` (the fuse's confidence picture) and ``original_map``
    (the unedited indices), the confidence is written to ``confidence_out``, 0 where the map
    was edited. Everything is checked before anything is written, and the outputs appear
    together.

    Returns:
        The paths written.

    Raises:
        StackError: a map of another size, an index naming a missing layer, a colour picture
            instead of the indices, an output that is an input, or unreadable files.
    """
    from stackmff.api import check_outputs

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
    written = check_outputs(output, confidence=confidence_out, inputs=sources)
    edited = read_index_map(focus_map)
    stack = load_stack(paths)
    size = stack.layers.shape[1:3]
    _check_indices(edited, len(stack), size, focus_map)
    files = {written[0]: encode_image(stack.to_output(regather(stack, edited)), written[0])}
    if confidence_out is not None:
        original = read_index_map(original_map)
        _check_indices(original, len(stack), size, original_map)
        kept = read_confidence_picture(confidence, size)
        kept[edited != original] = 0.0
        files[written[1]] = encode_image(confidence_picture(kept), written[1])
    write_files_atomically(files)
    return list(files)


def _check_indices(index_map: np.ndarray, n_layers: int, size: tuple[int, int],
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
                         f"{indices_name(path)}")
    raise StackError(f"{path} is {map_w}x{map_h} but the stack's layers are {width}x{height}; "
                     "regather needs the inputs the map was made from (for a fuse with "
                     "--align, the layers written by 'stackmff align')")


def _layers_of(stack: Stack | np.ndarray) -> np.ndarray:
    return check_layers(stack.layers if isinstance(stack, Stack) else stack)


def _check_mask(mask: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise StackError(f"the {name} is {mask.shape} but the focus map is {shape}")
    return mask.astype(bool, copy=False)


def _check_confidence(confidence: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    confidence = np.asarray(confidence)
    if confidence.shape != shape:
        raise StackError(f"the confidence is {confidence.shape} but the focus map is {shape}")
    return confidence.astype(np.float32, copy=False)
