"""Tiny focus stacks with a known focus map, made on the fly: for the tests, and for the
benchmarks and scripts that need stacks whose right answer is known without any files.

Not imported by ``import stackmff`` (like ``training`` and ``evaluation``, it is no part of
fusing a stack).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from stackmff.io import write_image
from stackmff.io.pixels import from_float


def texture(height: int, width: int, colour: bool, seed: int) -> np.ndarray:
    """A sharp, detailed image in [0.05, 0.95]: noise at two scales plus edges."""
    rng = np.random.default_rng(seed)
    shape = (height, width, 3) if colour else (height, width)
    fine = cv2.GaussianBlur(rng.random(shape, dtype=np.float32), (0, 0), 0.8)
    coarse = cv2.resize(rng.random((height // 8, width // 8) + shape[2:], dtype=np.float32),
                        (width, height), interpolation=cv2.INTER_NEAREST)
    image = 0.6 * (fine - fine.min()) / (np.ptp(fine) + 1e-9) + 0.4 * coarse
    return (0.05 + 0.9 * image).astype(np.float32)


def band_focus_map(height: int, width: int, n_layers: int) -> np.ndarray:
    """Vertical bands, one per layer, in a shuffled order (so layer order != position)."""
    order = np.random.default_rng(1).permutation(n_layers)
    return order[(np.arange(width) * n_layers) // width][None, :].repeat(height, axis=0)


def make_stack(n_layers: int = 4, height: int = 90, width: int = 124, colour: bool = False,
               seed: int = 0, blur_per_layer: float = 1.6):
    """Return ``(layers, truth, focus_map)``: layer k is sharp where ``focus_map == k`` and
    blurred elsewhere with sigma ``blur_per_layer * |k - focus_map|``."""
    truth = texture(height, width, colour, seed)
    focus_map = band_focus_map(height, width, n_layers)
    blurred = [truth] + [cv2.GaussianBlur(truth, (0, 0), blur_per_layer * d)
                         for d in range(1, n_layers)]
    layers = np.empty((n_layers,) + truth.shape, np.float32)
    for k in range(n_layers):
        distance = np.abs(focus_map - k)
        for d in range(n_layers):
            mask = distance == d
            layers[k][mask] = blurred[d][mask]
    return layers, truth, focus_map


def render_depth(truth: np.ndarray, depth: np.ndarray, n_layers: int,
                 blur_per_layer: float = 1.6, levels_per_layer: int = 8) -> np.ndarray:
    """A stack of a surface at a continuous ``depth`` (in layers, ``(H, W)``): layer k shows
    each pixel blurred with sigma ``blur_per_layer * |k - depth|`` (the blur is interpolated
    between ``levels_per_layer`` precomputed blurs per layer of distance)."""
    sigmas = np.arange(n_layers * levels_per_layer + 1) / levels_per_layer * blur_per_layer
    blurred = [truth] + [cv2.GaussianBlur(truth, (0, 0), s) for s in sigmas[1:]]
    layers = np.empty((n_layers,) + truth.shape, np.float32)
    for k in range(n_layers):
        position = np.abs(k - depth) * levels_per_layer
        low = np.clip(np.floor(position).astype(int), 0, len(sigmas) - 2)
        part = np.clip(position - low, 0, 1).astype(np.float32)
        if truth.ndim == 3:
            part = part[..., None]
        for level in np.unique(low):
            mask = low == level
            mixed = (1 - part) * blurred[level] + part * blurred[level + 1]
            layers[k][mask] = mixed[mask]
    return layers


def write_stack(folder: Path, layers: np.ndarray, dtype=np.uint8, suffix: str = ".png",
                names: list[str] | None = None) -> list[Path]:
    """Write float layers as image files (RGB order), ``layer_<k><suffix>`` unless ``names``
    are given, at the bit depth of ``dtype``, and return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"layer_{k}{suffix}" for k in range(len(layers))]
    paths = [folder / name for name in names]
    for layer, path in zip(layers, paths):
        write_image(from_float(layer, np.dtype(dtype)), path)
    return paths


def tiny_model_config(**changes):
    """The network with every part of the faithful one, at widths that train in seconds: the
    one model configuration the tests build on (``configs/smoke.toml`` is the same)."""
    from stackmff.model import ModelConfig

    return ModelConfig(stem_width=8, widths=(8, 16, 24, 32), ppm_width=8, decoder_width=8,
                       attention_heads=2, attention_ffn=16, **changes)
