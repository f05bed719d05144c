"""The paper's training-stack synthesis (StackMFF V3, Algorithm 1), kept exactly.

Depth is normalised and quantised into N equal bins; layer k shows bin k sharp and every
other bin j blurred with a Gaussian of kernel size 2|j - k| + 1 (OpenCV's automatic sigma),
with hard masks; the layers are shuffled and the ground truth is each pixel's bin, renumbered
to the shuffled order. Known simplifications (blur independent of N, no blur across depth
edges, no noise) are what the physical renderer addresses.
"""

from __future__ import annotations

import cv2
import numpy as np

from stackmff.data.scenes import Scene


def quantise_depth(depth: np.ndarray, n_layers: int) -> np.ndarray:
    """Normalised depth in N equal bins: ``(H, W)`` int64 in [0, N)."""
    span = float(depth.max() - depth.min())
    normalised = (depth - depth.min()) / span if span > 0 else np.zeros_like(depth)
    return np.minimum((normalised * n_layers).astype(np.int64), n_layers - 1)


def render_faithful(scene: Scene, n_layers: int, rng: np.random.Generator,
                    shuffle: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(stack (N, H, W[, 3]) float32, focus_map (H, W) int64)``."""
    if n_layers < 2:
        raise ValueError(f"a stack needs at least 2 layers, got {n_layers}")
    bins = quantise_depth(scene.depth, n_layers)
    blurred = {0: scene.image}
    stack = np.empty((n_layers,) + scene.image.shape, np.float32)
    for k in range(n_layers):
        layer = np.empty_like(scene.image)
        for j in range(n_layers):
            mask = bins == j
            if not mask.any():
                continue
            distance = abs(j - k)
            if distance not in blurred:
                size = 2 * distance + 1
                blurred[distance] = cv2.GaussianBlur(scene.image, (size, size), 0)
            layer[mask] = blurred[distance][mask]
        stack[k] = layer
    order = rng.permutation(n_layers) if shuffle else np.arange(n_layers)
    new_index = np.argsort(order)  # layer order[i] is now at position i
    return stack[order], new_index[bins]
