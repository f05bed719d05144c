"""Depth-map fusion: per pixel, copy the layer with the highest focus measure.

The classic shape-from-focus selection (Nayar & Nakagawa 1994) with a spatial consistency
step: the winning-layer map is median-filtered, so isolated wrong picks in flat regions
follow their neighbourhood. Every output pixel is an input pixel.
"""

from __future__ import annotations

import cv2
import numpy as np

from stackmff.classical.focus_measures import peak_offset
from stackmff.classical.selection import RunningSelection, laplacian_measure
from stackmff.methods import register
from stackmff.progress import progress
from stackmff.result import FusionResult
from stackmff.stack_ops import check_layers, gather

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
    n = layers.shape[0]
    selection = RunningSelection(layers.shape[1:3], neighbours=True)
    for k in progress(range(n), desc="depthmap", total=n):
        selection.add(laplacian_measure(layers[k]))
    focus_map = consistent_map(selection.best, n)
    depth = selection.best + peak_offset(selection.before, selection.best_measure,
                                         selection.after, selection.best, n)
    return FusionResult(fused=gather(layers, focus_map), focus_map=focus_map,
                        confidence=selection.confidence(), method="depthmap", depth=depth)
