"""Quality measures for stacks without ground truth.

- Q^AB/F, the gradient-based fusion quality of C. S. Xydeas and V. Petrovic, "Objective
  image fusion performance measure", Electronics Letters 36(4), 2000, generalised from a
  pair to a stack: edge strength and orientation preserved from each layer, weighted by the
  layer's edge strength, summed over all layers. 1 = every edge of every layer preserved.
- Sharpness: the mean Sobel gradient magnitude of the fused image (the "average gradient"
  of the fusion literature); higher is sharper, but it also rewards noise and halos.
"""

from __future__ import annotations

import cv2
import numpy as np

from stackmff.metrics.reference import grey8

# constants of Xydeas & Petrovic (2000)
_GAMMA_G, _KAPPA_G, _SIGMA_G = 0.9994, -15.0, 0.5
_GAMMA_A, _KAPPA_A, _SIGMA_A = 0.9879, -22.0, 0.8


def _gradients(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    grey = grey8(image).astype(np.float64)
    gx = cv2.Sobel(grey, cv2.CV_64F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_64F, 0, 1, ksize=3)
    strength = np.sqrt(gx * gx + gy * gy)
    orientation = np.arctan(gy / (gx + 1e-12))
    return strength, orientation


def qabf(layers: np.ndarray, fused: np.ndarray) -> float:
    """Q^AB/F of ``fused`` with respect to all ``layers`` (``(L, H, W[, C])``)."""
    g_f, a_f = _gradients(fused)
    numerator = np.zeros_like(g_f)
    denominator = np.zeros_like(g_f)
    for layer in layers:
        g, a = _gradients(layer)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(g > g_f, g_f / g, g / g_f)
        ratio = np.nan_to_num(ratio, nan=0.0, posinf=0.0)
        ratio[(g == 0) & (g_f == 0)] = 1.0
        angle = 1.0 - np.abs(a - a_f) / (np.pi / 2)
        q_g = _GAMMA_G / (1.0 + np.exp(_KAPPA_G * (ratio - _SIGMA_G)))
        q_a = _GAMMA_A / (1.0 + np.exp(_KAPPA_A * (angle - _SIGMA_A)))
        numerator += q_g * q_a * g
        denominator += g
    total = denominator.sum()
    return float(numerator.sum() / total) if total > 0 else 1.0


def sharpness(image: np.ndarray) -> float:
    """Mean Sobel gradient magnitude of the 8-bit grey image."""
    return float(_gradients(image)[0].mean())
