"""Depth-map fusion: per pixel, copy the layer with the highest focus measure.

The classic shape-from-focus selection (Nayar & Nakagawa 1994) with a spatial consistency
step: the winning-layer map is median-filtered, so isolated wrong picks in flat regions
follow their neighbourhood. Every output pixel is an input pixel.
"""

from __future__ import annotations

import cv2
import numpy as np

from stackmff.classical.focus_measures import default_window, laplacian_energy, peak_offset
from stackmff.io.pixels import to_float
from stackmff.methods import register
from stackmff.progress import progress
from stackmff.result import FusionResult
from stackmff.stack_ops import check_layers, gather, luma

MEDIAN_SIZE = 5


def consistent_map(focus_map: np.ndarray, n_layers: int, size: int = MEDIAN_SIZE) -> np.ndarray:
    """Median-filter a layer-index map (OpenCV for up to 256 layers, SciPy beyond)."""
    if n_layers <= 256:
        return cv2.medianBlur(focus_map.astype(np.uint8), size).astype(np.uint16)
    from scipy import ndimage  # imported here: rarely needed, slow to import

    return ndimage.median_filter(focus_map, size=size, mode="nearest").astype(np.uint16)


@register("depthmap", "per pixel the layer with the highest Laplacian energy, "
          "median-smoothed map, pixels copied", float_copy=False)
def fuse_depthmap(layers: np.ndarray) -> FusionResult:
    layers = check_layers(layers, keep_integers=True)  # converted a layer at a time
    window = default_window(layers.shape[1:3])
    n, shape = layers.shape[0], layers.shape[1:3]
    best = np.zeros(shape, np.uint16)
    best_measure = np.full(shape, -1.0, np.float32)
    measure_sum = np.zeros(shape, np.float32)
    # the measures of the best layer's neighbours, for the sub-layer position
    before, after = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    previous = None
    for k in progress(range(n), desc="depthmap", total=n):
        measure = laplacian_energy(luma(to_float(layers[k])), window)
        if previous is not None:
            np.copyto(after, measure, where=best == k - 1)
        sharper = measure > best_measure
        best[sharper] = k
        best_measure[sharper] = measure[sharper]
        if previous is not None:
            np.copyto(before, previous, where=sharper)
        measure_sum += measure
        previous = measure
    focus_map = consistent_map(best, n)
    confidence = best_measure / np.maximum(measure_sum, 1e-12)
    confidence[measure_sum <= 1e-12] = 1.0 / n
    depth = best + peak_offset(before, best_measure, after, best, n)
    return FusionResult(fused=gather(layers, focus_map), focus_map=focus_map,
                        confidence=confidence.astype(np.float32), method="depthmap",
                        depth=depth)
