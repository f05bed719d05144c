"""Dual-tree complex wavelet fusion (Lewis et al., "Pixel- and region-based image fusion with
complex wavelets", Information Fusion 8(2), 2007), whole stack.

Per oriented complex subband the layer with the largest local magnitude wins; the lowpass is
averaged. The complex transform is nearly shift invariant, so it rings less than the DWT.
"""

from __future__ import annotations

import numpy as np

from stackmff.classical import dtcwt_transform as dt
from stackmff.classical.transform_fusion import Decomposition, fuse_in_transform
from stackmff.methods import register
from stackmff.result import FusionResult


def _forward(plane: np.ndarray, levels: int) -> Decomposition:
    coeffs = dt.forward(plane, levels)
    details = [band for level in coeffs.highpass for band in level]
    return Decomposition(lowpass=coeffs.lowpass, details=details, context=coeffs)


def _inverse(decomposition: Decomposition) -> np.ndarray:
    template = decomposition.context
    bands = decomposition.details
    highpass = [bands[i:i + 6] for i in range(0, len(bands), 6)]
    return dt.inverse(dt.DTCWTCoefficients(lowpass=decomposition.lowpass, highpass=highpass,
                                           padded_shape=template.padded_shape,
                                           shape=template.shape))


@register("dtcwt", "dual-tree complex wavelet: per oriented subband keep the largest "
          "magnitude, average the lowpass", confidence=False,
          selects=False)
def fuse_dtcwt(layers: np.ndarray) -> FusionResult:
    levels = dt.max_levels(layers.shape[1:3])
    return fuse_in_transform(layers, lambda p: _forward(p, levels), _inverse, method="dtcwt")
