"""The operations every method shares: input checks, BT.601 luma, colour planes, the gather.

Every output pixel of a selection method is ``layers[focus_map[y, x], y, x]`` (the paper's
fidelity); the gather that composes it lives here, once, for fusion, retouching, training and
evaluation alike.
"""

from __future__ import annotations

import numpy as np

BT601 = np.array([0.299, 0.587, 0.114], np.float32)


def check_layers(layers: np.ndarray) -> np.ndarray:
    """Validate a float stack ``(L, H, W[, 3])`` and return it as float32."""
    layers = np.asarray(layers)
    if layers.ndim not in (3, 4) or (layers.ndim == 4 and layers.shape[3] != 3):
        raise ValueError(f"expected a stack of shape (L, H, W) or (L, H, W, 3), got {layers.shape}")
    if layers.shape[0] < 2:
        raise ValueError(f"a focus stack needs at least 2 layers, got {layers.shape[0]}")
    return layers.astype(np.float32, copy=False)


def luma(image: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB image or stack (last axis = colour); grey passes through."""
    if image.ndim >= 3 and image.shape[-1] == 3:
        return image @ BT601
    return image


def channels(layer: np.ndarray) -> list[np.ndarray]:
    """The colour planes of one layer (one plane for grey)."""
    return [layer] if layer.ndim == 2 else [layer[..., c] for c in range(layer.shape[-1])]


def gather(layers: np.ndarray, focus_map: np.ndarray) -> np.ndarray:
    """``fused[y, x] = layers[focus_map[y, x], y, x]``: every pixel copied from a layer."""
    index = focus_map.astype(np.intp)[None, ...]
    if layers.ndim == 4:
        index = index[..., None]
    return np.take_along_axis(layers, index, axis=0)[0]
