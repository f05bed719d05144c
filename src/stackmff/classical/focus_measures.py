"""Per-pixel focus measures, shared by the classical methods and the evaluation code.

Source: S. Pertuz, D. Puig, M. A. Garcia, "Analysis of focus measure operators for
shape-from-focus", Pattern Recognition 46(5), 2013 (LAP2/energy of Laplacian family).
"""

from __future__ import annotations

import cv2
import numpy as np


def laplacian_energy(plane: np.ndarray, window_sigma: float, noise_sigma: float = 1.0) -> np.ndarray:
    """Energy of the Laplacian, smoothed over a Gaussian window.

    A light pre-blur (``noise_sigma``) keeps sensor noise and JPEG blocks from looking sharp.
    """
    smooth = cv2.GaussianBlur(plane.astype(np.float32), (0, 0), noise_sigma) if noise_sigma else plane
    response = cv2.Laplacian(smooth, cv2.CV_32F, ksize=3)
    return cv2.GaussianBlur(response * response, (0, 0), window_sigma)


def default_window(shape: tuple[int, int]) -> float:
    """Measure window that grows with the image (about 0.4% of the short side, at least 2)."""
    return max(2.0, 0.004 * min(shape))


def peak_offset(before: np.ndarray, peak: np.ndarray, after: np.ndarray, best: np.ndarray,
                layers: int) -> np.ndarray:
    """Where, within half a layer, the focus measure peaks around the best layer: the vertex
    of a Gaussian through the measures of the layer before, the best and the one after (a
    parabola through their logarithms; shape from focus's usual interpolation). 0 at the first
    and last layer and where the three do not make a peak."""
    tiny = np.float32(1e-12)
    low, mid, high = (np.log(np.maximum(m, tiny)) for m in (before, peak, after))
    curvature = low - 2 * mid + high
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.float32(0.5) * (low - high) / curvature
    inside = (best > 0) & (best < layers - 1) & (curvature < 0) & np.isfinite(offset)
    return np.where(inside, np.clip(offset, -0.5, 0.5), np.float32(0)).astype(np.float32)
