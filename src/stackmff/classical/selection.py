"""The running selection that depthmap and variance make in one pass over the layers: per
pixel the layer with the highest focus measure so far, that measure, the sum of all of them,
and (for a live preview) the pixels chosen so far.

One layer updates it at a cost that does not depend on how many came before, so the same
object serves a whole stack at once and a stack that grows a frame at a time
(``stackmff watch --live``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from stackmff.classical.focus_measures import default_window, laplacian_energy
from stackmff.io.pixels import to_float
from stackmff.stack_ops import luma

Measure = Callable[[np.ndarray], np.ndarray]


class RunningSelection:
    """Per pixel the first layer of the highest focus measure among those added.

    Args:
        shape: ``(H, W)`` of the layers.
        keep_pixels: also keep each pixel of the chosen layer (:attr:`pixels`), so that the
            selection can be shown without the layers.
        neighbours: also keep the measures of the layers just before and after the chosen
            one (:attr:`before`, :attr:`after`), for a position between layers.
    """

    def __init__(self, shape: tuple[int, int], keep_pixels: bool = False,
                 neighbours: bool = False) -> None:
        self.count = 0
        self.best = np.zeros(shape, np.uint16)
        self.best_measure = np.full(shape, -1.0, np.float32)
        self.measure_sum = np.zeros(shape, np.float32)
        self.keep_pixels = keep_pixels
        self.pixels: np.ndarray | None = None
        self.neighbours = neighbours
        if neighbours:
            self.before = np.zeros(shape, np.float32)
            self.after = np.zeros(shape, np.float32)
            self.previous: np.ndarray | None = None

    def add(self, measure: np.ndarray, layer: np.ndarray | None = None) -> None:
        """Take the next layer's focus measure (and, with ``keep_pixels``, the layer)."""
        following = self.neighbours and self.previous is not None
        if following:  # this layer follows the chosen one
            np.copyto(self.after, measure, where=self.best == self.count - 1)
        sharper = measure > self.best_measure
        self.best[sharper] = self.count
        self.best_measure[sharper] = measure[sharper]
        if following:  # the one before a newly chosen layer
            np.copyto(self.before, self.previous, where=sharper)
        if self.neighbours:
            self.previous = measure
        self.measure_sum += measure
        if self.keep_pixels:
            if self.pixels is None:
                self.pixels = np.array(layer)
            else:
                self.pixels[sharper] = layer[sharper]
        self.count += 1

    def confidence(self) -> np.ndarray:
        """The winning measure's share of all measures (1 / L where every measure is 0)."""
        confidence = self.best_measure / np.maximum(self.measure_sum, 1e-12)
        confidence[self.measure_sum <= 1e-12] = 1.0 / max(self.count, 1)
        return confidence.astype(np.float32)


def laplacian_measure(layer: np.ndarray) -> np.ndarray:
    """depthmap's focus measure of one layer (integer or float): the energy of the Laplacian
    of its luma over a window that grows with the image."""
    return laplacian_energy(luma(to_float(layer)), default_window(layer.shape[:2]))


def frame_measure(method: str) -> Measure | None:
    """The per-layer focus measure of a selection method that needs nothing but the layer
    itself (``None`` for the others: the network, the transform methods, mip)."""
    from stackmff.classical.projections import variance_measure

    measures = {"depthmap": laplacian_measure,
                "variance": lambda layer: variance_measure(to_float(layer))}
    return measures.get(method)
