"""Discrete wavelet fusion (Li, Manjunath & Mitra 1995) with PyWavelets, whole stack."""

from __future__ import annotations

import warnings

import numpy as np

from stackmff.classical.transform_fusion import Decomposition, fuse_in_transform
from stackmff.methods import register
from stackmff.result import FusionResult

WAVELET = "sym4"
MAX_LEVELS = 5


def _forward(plane: np.ndarray, levels: int) -> Decomposition:
    import pywt  # imported when used: the other methods do not pay for it

    with warnings.catch_warnings():
        # an image smaller than the wavelet gets one level with boundary effects, on purpose
        warnings.filterwarnings("ignore", message="Level value of", category=UserWarning)
        coeffs = pywt.wavedec2(plane, WAVELET, mode="symmetric", level=levels)
    details = [band for level in coeffs[1:] for band in level]
    return Decomposition(lowpass=[coeffs[0]], details=details, context=plane.shape)


def _inverse(decomposition: Decomposition) -> np.ndarray:
    import pywt

    bands = decomposition.details
    coeffs = [decomposition.lowpass[0]] + [tuple(bands[i:i + 3]) for i in range(0, len(bands), 3)]
    height, width = decomposition.context
    return pywt.waverec2(coeffs, WAVELET, mode="symmetric")[:height, :width]


@register("dwt", f"discrete wavelet ({WAVELET}): per subband keep the most active layer, "
          "average the approximation", confidence=False, selects=False)
def fuse_dwt(layers: np.ndarray) -> FusionResult:
    import pywt

    levels = max(1, min(MAX_LEVELS, pywt.dwt_max_level(min(layers.shape[1:3]), WAVELET)))
    return fuse_in_transform(layers, lambda p: _forward(p, levels), _inverse, method="dwt")
