"""``--prefer near|far``: where several layers are nearly as sharp, take the nearest or the
farthest of them, over the whole image.

A step after the method (as ``--halo`` is): the library's :func:`~stackmff.retouch.prefer`
rule with a per-layer focus measure (the energy of the Laplacian that ``depthmap`` uses),
computed a layer at a time when the rule asks for it, so no per-layer volume is kept. A layer
is a candidate at a pixel where its measure is at least half the pixel's best. The image is
gathered again from the new map, and the confidence is 0 where the rule overrode the method.
"""

from __future__ import annotations

import numpy as np

from stackmff.classical.focus_measures import default_window, laplacian_energy
from stackmff.errors import StackError
from stackmff.io.pixels import to_float
from stackmff.result import FusionResult
from stackmff.retouch.edit import regather_edit
from stackmff.retouch.maps import Order, Side, prefer
from stackmff.stack_ops import gather, luma

SIDES = ("near", "far")


class Sharpness:
    """The focus measure of each layer, ``(H, W)`` float32, computed when it is indexed."""

    def __init__(self, layers: np.ndarray):
        self.layers = layers
        self.window = default_window(layers.shape[1:3])

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, k: int) -> np.ndarray:
        return laplacian_energy(luma(to_float(self.layers[k])), self.window)


def check_side(side: str | None) -> None:
    """``--prefer`` takes ``near`` or ``far``."""
    if side is not None and side not in SIDES:
        raise StackError(f"--prefer takes near or far, got {side!r}")


def prefer_sharp(layers: np.ndarray, focus_map: np.ndarray, side: Side,
                 order: Order = "near-to-far",
                 keep: np.ndarray | None = None) -> np.ndarray:
    """The map with each pixel on the nearest (farthest) of the layers at least half as sharp
    as its sharpest; pixels where ``keep`` is true do not change."""
    region = np.ones(focus_map.shape, bool) if keep is None else ~np.asarray(keep, bool)
    return prefer(focus_map, None, region, side, probabilities=Sharpness(layers), order=order)


def prefer_result(layers: np.ndarray, result: FusionResult, side: Side,
                  order: Order = "near-to-far") -> FusionResult:
    """:func:`prefer_sharp` on a selection method's result, gathered again."""
    if result.focus_map is None or not np.array_equal(result.fused,
                                                      gather(layers, result.focus_map)):
        raise StackError(f"--prefer edits the focus map and gathers again, so it needs a "
                         f"method whose image is the gather of its map, not {result.method}")
    focus_map = prefer_sharp(layers, result.focus_map, side, order).astype(
        result.focus_map.dtype)
    fused, confidence = regather_edit(layers, focus_map, focus_map != result.focus_map,
                                      result.confidence)
    return FusionResult(fused=fused, focus_map=focus_map, confidence=confidence,
                        method=result.method, depth=result.depth)
