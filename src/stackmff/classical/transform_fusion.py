"""Whole-stack fusion in a multiscale transform domain, streaming over layers.

Each layer is transformed once; per detail coefficient the layer with the largest local
activity (mean absolute luma coefficient in a 3x3 window, Li, Manjunath & Mitra 1995) wins,
and the lowpass is averaged over all layers. Memory holds the running winner, not the
whole stack of transforms. Colour planes take the luma decision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from stackmff.classical.common import source_map
from stackmff.progress import progress
from stackmff.result import FusionResult
from stackmff.stack_ops import channels, check_layers, luma


@dataclass
class Decomposition:
    """A transform of one plane: lowpass arrays (averaged) and detail arrays (selected)."""

    lowpass: list[np.ndarray]
    details: list[np.ndarray]
    context: object = None


Forward = Callable[[np.ndarray], Decomposition]
Inverse = Callable[[Decomposition], np.ndarray]


def activity(coefficients: np.ndarray) -> np.ndarray:
    """Local activity: 3x3 mean of the coefficient magnitude."""
    return cv2.blur(np.abs(coefficients).astype(np.float32), (3, 3),
                    borderType=cv2.BORDER_REFLECT)


def fuse_in_transform(layers: np.ndarray, forward: Forward, inverse: Inverse,
                      method: str) -> FusionResult:
    """Fuse a stack with max-activity selection of details and averaged lowpass."""
    layers = check_layers(layers)
    n_layers = layers.shape[0]
    best_activity: list[np.ndarray] = []
    fused: list[Decomposition] = []
    for k in progress(range(n_layers), desc=method, total=n_layers):
        decision = forward(luma(layers[k]))
        planes = [forward(p) for p in channels(layers[k])] if layers.ndim == 4 else [decision]
        levels = [activity(d) for d in decision.details]
        if k == 0:
            best_activity = levels
            fused = planes
            continue
        for i, level in enumerate(levels):
            wins = level > best_activity[i]
            best_activity[i] = np.where(wins, level, best_activity[i])
            for total, plane in zip(fused, planes):
                total.details[i] = np.where(wins, plane.details[i], total.details[i])
        for total, plane in zip(fused, planes):
            total.lowpass = [a + b for a, b in zip(total.lowpass, plane.lowpass)]
    for total in fused:
        total.lowpass = [a / n_layers for a in total.lowpass]
    images = [inverse(total) for total in fused]
    image = np.stack(images, axis=-1) if layers.ndim == 4 else images[0]
    image = np.clip(image, 0.0, 1.0).astype(np.float32)
    return FusionResult(fused=image, focus_map=source_map(layers, image), method=method)
