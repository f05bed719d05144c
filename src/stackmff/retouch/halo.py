"""Halo limiting: keep a near object's defocus blur out of the far background beside it.

In the layers focused behind a near object, its blur spreads over the background around it.
A method that picks those layers for the background next to the object copies that blur
(a halo); one that picks the near layer copies a blurred background. The best layer grows
farther with the distance from the object's edge, as the spread of its blur allows.

The rule measures that spread from the stack itself: for each layer ``a`` that holds a near
object (pixels the method chose from ``a``), the Gaussian blur that turns layer ``a`` into
each farther layer ``k`` inside the object (``sigma[a, k]``). A pixel outside the object, at
distance ``d`` from it (objects are what lies at layer ``a`` or nearer, opened to drop specks
and slivers a noisy map has), may then take layer ``k`` only if ``REACH * sigma[a, k] <= d`` for
``k`` and every layer between: its layer is the method's choice or the farthest such layer,
whichever is nearer. Pixels inside objects never change, and the image stays the gather of
its map. Measured in docs/halo.md: it helps in front of a dark far background, and costs
detail elsewhere, so it is an option (``--halo``), not the default.
"""

from __future__ import annotations

import cv2
import numpy as np

from stackmff.errors import StackError
from stackmff.result import FusionResult
from stackmff.retouch.edit import regather_edit
from stackmff.retouch.maps import ORDERS, Order
from stackmff.stack_ops import gather, window_luma

REACH = 2.0  # blur sigmas beyond which a near edge's spill is taken as gone
SIGMAS = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30], np.float32)
INTERIOR = 6  # px eroded from an object before its blur is measured (its edge mixes)
MIN_PIXELS = 200  # an object's interior smaller than this gives no blur estimate
FIT_PIXELS = 1 << 20  # the blur is measured on a copy shrunk to about this many pixels


def limit_halos(layers: np.ndarray, focus_map: np.ndarray,
                order: Order = "near-to-far") -> np.ndarray:
    """The focus map with far choices beside near objects limited by the measured blur.

    Args:
        layers: ``(L, H, W[, 3])`` stack, float in [0, 1] or the files' uint8/uint16.
        focus_map: ``(H, W)`` layer index per pixel.
        order: how the stack runs; ``"near-to-far"`` when layer 0 is focused nearest.

    Returns:
        A new focus map of the same dtype; it differs from ``focus_map`` only outside the
        near objects, and only towards nearer layers.
    """
    if order not in ORDERS:
        raise StackError(f"halo order must be one of {', '.join(ORDERS)}, got {order!r}")
    n = layers.shape[0]
    rank = focus_map.astype(np.int64)
    if order == "far-to-near":
        layers, rank = layers[::-1], n - 1 - rank
    sigma = _blur_between_layers(window_luma(layers), rank)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * INTERIOR + 1,) * 2)
    limited = rank.copy()
    for a in range(n - 1):
        if np.isnan(sigma[a, a + 1]):
            continue
        # near objects: what lies at layer a or nearer, without specks and thin slivers
        objects = cv2.morphologyEx((rank <= a).astype(np.uint8), cv2.MORPH_OPEN, kernel)
        beyond = (limited > a) & (objects == 0)
        if not beyond.any() or not objects.any():
            continue
        distance = cv2.distanceTransform(1 - objects, cv2.DIST_L2, 5)
        # layer a+j is allowed once the distance passes the largest reach up to it
        reach = np.maximum.accumulate(REACH * np.nan_to_num(sigma[a, a + 1:], nan=np.inf))
        farthest = a + np.searchsorted(reach, distance[beyond], side="right")
        limited[beyond] = np.minimum(limited[beyond], farthest)
    if order == "far-to-near":
        limited = n - 1 - limited
    return limited.astype(focus_map.dtype)


def limit_result_halos(layers: np.ndarray, result: FusionResult,
                       order: Order = "near-to-far") -> FusionResult:
    """:func:`limit_halos` on a selection method's result: the image is gathered again from
    the new map, and the confidence is 0 where the rule overrode the method."""
    if result.focus_map is None or not np.array_equal(result.fused,
                                                      gather(layers, result.focus_map)):
        raise StackError(f"--halo edits the focus map and gathers again, so it needs a method "
                         f"whose image is the gather of its map, not {result.method}")
    focus_map = limit_halos(layers, result.focus_map, order)
    fused, confidence = regather_edit(layers, focus_map, focus_map != result.focus_map,
                                      result.confidence)
    return FusionResult(fused=fused, focus_map=focus_map, confidence=confidence,
                        method=result.method, depth=result.depth)


def _blur_between_layers(grey: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """``sigma[a, k]``, k > a: the Gaussian blur (px, full resolution) that best turns layer
    ``a`` into layer ``k`` inside the interior of the pixels chosen from ``a``; NaN where
    ``a`` has too small an interior to tell."""
    n, height, width = grey.shape
    scale = min(1.0, float(np.sqrt(FIT_PIXELS / (height * width))))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        grey = np.stack([cv2.resize(g, size, interpolation=cv2.INTER_AREA) for g in grey])
        rank = cv2.resize(rank.astype(np.int32), size, interpolation=cv2.INTER_NEAREST)
    sigmas = SIGMAS * scale
    kernel = np.ones((2 * INTERIOR + 1, 2 * INTERIOR + 1), np.uint8)
    sigma = np.full((n, n), np.nan, np.float32)
    for a in range(n - 1):
        inside = cv2.erode((rank == a).astype(np.uint8), kernel).astype(bool)
        if inside.sum() < MIN_PIXELS:
            continue
        blurred = [grey[a][inside] if s == 0 else cv2.GaussianBlur(grey[a], (0, 0), s)[inside]
                   for s in sigmas]
        for k in range(a + 1, n):
            target = grey[k][inside]
            errors = [float(np.mean((b - target) ** 2)) for b in blurred]
            sigma[a, k] = SIGMAS[int(np.argmin(errors))]
    return sigma
