"""What the transform-domain methods add to the shared stack operations: a source map."""

from __future__ import annotations

import cv2
import numpy as np

from stackmff.stack_ops import luma


def source_map(layers: np.ndarray, fused: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """Per pixel, the layer the fused image is locally closest to (in luma).

    Gives transform-domain methods, which blend coefficients rather than copy pixels, a
    focus map that means the same as a selection method's: where the result comes from.
    """
    target = luma(fused)
    best_error = np.full(target.shape, np.inf, np.float32)
    best = np.zeros(target.shape, np.uint16)
    for k in range(layers.shape[0]):
        error = cv2.GaussianBlur(np.abs(luma(layers[k]) - target), (0, 0), sigma)
        closer = error < best_error
        best_error[closer] = error[closer]
        best[closer] = k
    return best
