"""Edits of a focus map: paint a layer, prefer the near (or far) confident layer, and the
check every map and edit goes through.

"Near" and "far" assume the usual stack order, from near focus (layer 0) to far focus (the
last layer); say ``order="far-to-near"`` for a stack ordered the other way.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from stackmff.errors import StackError

Side = Literal["near", "far"]
Order = Literal["near-to-far", "far-to-near"]
ORDERS = ("near-to-far", "far-to-near")


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
    mask = check_mask(mask, focus_map.shape, "mask")
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
      per-layer focus measure, higher = sharper; or a sequence of ``(H, W)`` layers made on
      demand, such as :class:`stackmff.retouch.ties.Sharpness`), a layer is a candidate at a pixel where its
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
    if order not in ORDERS:
        raise StackError(f"order must be 'near-to-far' or 'far-to-near', got {order!r}")
    lowest = (side == "near") == (order == "near-to-far")
    focus_map = check_focus_map(focus_map)
    region = check_mask(region, focus_map.shape, "region")
    if probabilities is not None:
        chosen, found = _by_probabilities(probabilities, focus_map, min_ratio, lowest)
    elif confidence is not None:
        confidence = check_confidence(confidence, focus_map.shape)
        chosen, found = _by_neighbourhood(focus_map, confidence >= min_confidence, window,
                                          lowest)
    else:
        raise StackError("prefer needs the confidence map or the per-layer probabilities")
    change = region & found
    top = int(chosen[change].max(initial=0))
    preferred = focus_map.astype(np.promote_types(focus_map.dtype, np.min_scalar_type(top)))
    preferred[change] = chosen[change]
    return preferred


def _by_probabilities(probabilities, focus_map: np.ndarray, min_ratio: float,
                      lowest: bool) -> tuple[np.ndarray, np.ndarray]:
    """The nearest (farthest) candidate layer per pixel, a layer at a time: ``probabilities``
    is an ``(L, H, W)`` array or any sequence of ``(H, W)`` layers computed on demand (it is
    read twice: once for each pixel's best, once for the candidates)."""
    if isinstance(probabilities, np.ndarray) or not hasattr(probabilities, "__getitem__"):
        probabilities = np.asarray(probabilities, np.float32)
        if probabilities.ndim != 3:
            raise StackError(f"probabilities must be (L, H, W) with (H, W) = "
                             f"{focus_map.shape}, got {probabilities.shape}")
    count = len(probabilities)
    if count == 0 or np.shape(probabilities[0]) != focus_map.shape:
        shape = (count, *np.shape(probabilities[0])) if count else (0,)
        raise StackError(f"probabilities must be (L, H, W) with (H, W) = {focus_map.shape}, "
                         f"got {shape}")
    if not 0.0 <= min_ratio <= 1.0:
        raise StackError(f"min_ratio must be in [0, 1], got {min_ratio}")
    check_focus_map(focus_map, count)
    best = np.zeros(focus_map.shape, np.float32)
    for k in range(count):
        np.maximum(best, np.asarray(probabilities[k], np.float32), out=best)
    threshold = np.float32(min_ratio) * best
    chosen = np.zeros(focus_map.shape, np.int64)
    found = np.zeros(focus_map.shape, bool)
    for k in (range(count) if lowest else range(count - 1, -1, -1)):
        candidate = ~found & (np.asarray(probabilities[k], np.float32) >= threshold)
        chosen[candidate] = k
        found |= candidate
    found &= best > 0
    return chosen, found


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


def check_mask(mask: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    """A mask or region of the map's shape, as bool."""
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise StackError(f"the {name} is {mask.shape} but the focus map is {shape}")
    return mask.astype(bool, copy=False)


def check_confidence(confidence: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A confidence map of the map's shape, as float32."""
    confidence = np.asarray(confidence)
    if confidence.shape != shape:
        raise StackError(f"the confidence is {confidence.shape} but the focus map is {shape}")
    return confidence.astype(np.float32, copy=False)
