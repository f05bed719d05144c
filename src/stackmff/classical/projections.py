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
from stackmff.classical.selection import RunningSelection
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


def variance_measure(layer: np.ndarray) -> np.ndarray:
    """The variance projection's measure of one float layer: its luma's local variance."""
    return local_variance(np.ascontiguousarray(luma(layer)), default_window(layer.shape[:2]))


@register("variance", "variance projection: per pixel the layer of the largest local "
          "variance, pixels copied")
def fuse_variance(layers: np.ndarray) -> FusionResult:
    layers = check_layers(layers)
    selection = RunningSelection(layers.shape[1:3])
    for k in progress(range(layers.shape[0]), desc="variance", total=layers.shape[0]):
        selection.add(variance_measure(layers[k]))
    return FusionResult(fused=gather(layers, selection.best), focus_map=selection.best,
                        confidence=selection.confidence(), method="variance")
