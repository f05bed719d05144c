"""Focus-map accuracy on stacks with a known focus map."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class MapAccuracy:
    exact: float        # share of pixels whose chosen layer is the true one
    within_one: float   # share within one layer of the true one (ordered stacks)


def focus_map_accuracy(predicted: np.ndarray, truth: np.ndarray) -> MapAccuracy:
    """Compare two ``(H, W)`` layer-index maps."""
    if predicted.shape != truth.shape:
        raise ValueError(f"maps differ in shape: {predicted.shape} vs {truth.shape}")
    difference = np.abs(predicted.astype(np.int64) - truth.astype(np.int64))
    return MapAccuracy(float(np.mean(difference == 0)), float(np.mean(difference <= 1)))
