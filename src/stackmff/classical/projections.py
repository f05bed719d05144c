"""The projections microscopists know, as baselines beside the fusion methods.

``mip``: the maximum intensity projection, per pixel and colour channel the brightest layer.
It suits widefield fluorescence, where the in-focus plane of a bright structure is its
brightest, and fails in brightfield, where defocus lifts dark detail towards the background.

``variance``: the variance projection of extended-depth-of-field tools, per pixel the layer
whose neighbourhood varies most (local intensity variance), copied without smoothing the map.
It is not Z Project's standard-deviation image, which is not an image of the specimen.
"""

from __future__ import annotations

import cv2
import numpy as np

from stackmff.classical.focus_measures import default_window
from stackmff.methods import register
from stackmff.progress import progress
from stackmff.result import FusionResult
from stackmff.stack_ops import check_layers, gather, luma


@register("mip", "maximum intensity projection: per pixel and channel the brightest layer",
          confidence=False, selects=False)
def fuse_mip(layers: np.ndarray) -> FusionResult:
    layers = check_layers(layers)
    focus_map = np.argmax(luma(layers), axis=0).astype(np.uint16)
    return FusionResult(fused=layers.max(axis=0), focus_map=focus_map, method="mip")


def local_variance(plane: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted local variance: E[x^2] - E[x]^2 over a window of ``sigma``."""
    mean = cv2.GaussianBlur(plane, (0, 0), sigma)
    return np.maximum(cv2.GaussianBlur(plane * plane, (0, 0), sigma) - mean * mean, 0.0)


@register("variance", "variance projection: per pixel the layer of the largest local "
          "variance, pixels copied")
def fuse_variance(layers: np.ndarray) -> FusionResult:
    layers = check_layers(layers)
    sigma = default_window(layers.shape[1:3])
    best = np.zeros(layers.shape[1:3], np.uint16)
    best_measure = np.full(layers.shape[1:3], -1.0, np.float32)
    total = np.zeros(layers.shape[1:3], np.float32)
    for k in progress(range(layers.shape[0]), desc="variance", total=layers.shape[0]):
        measure = local_variance(np.ascontiguousarray(luma(layers[k])), sigma)
        sharper = measure > best_measure
        best[sharper] = k
        best_measure[sharper] = measure[sharper]
        total += measure
    confidence = best_measure / np.maximum(total, 1e-12)
    confidence[total <= 1e-12] = 1.0 / layers.shape[0]
    return FusionResult(fused=gather(layers, best), focus_map=best,
                        confidence=confidence.astype(np.float32), method="variance")
