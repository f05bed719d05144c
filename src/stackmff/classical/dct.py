"""DCT-domain fusion: DCT + variance + consistency verification.

Source: M. B. A. Haghighat, A. Aghagolzadeh, H. Seyedarabi, "Multi-focus image fusion for
visual sensor networks in DCT domain", Computers & Electrical Engineering 37(5), 2011.
Per 8x8 block, the layer whose DCT coefficients carry the most AC energy (the block
variance) wins; a 3x3 majority vote over the block decisions removes isolated picks; the
winning blocks are copied.
"""

from __future__ import annotations

import cv2
import numpy as np

from stackmff.methods import register
from stackmff.progress import progress
from stackmff.result import FusionResult
from stackmff.stack_ops import check_layers, gather, luma

BLOCK = 8


def block_variance(plane: np.ndarray) -> np.ndarray:
    """Per 8x8 block: variance computed from the orthonormal 2-D DCT (AC energy / 64)."""
    height, width = plane.shape
    pad_y, pad_x = (-height) % BLOCK, (-width) % BLOCK
    padded = cv2.copyMakeBorder(plane, 0, pad_y, 0, pad_x, cv2.BORDER_REFLECT_101)
    blocks = padded.reshape(padded.shape[0] // BLOCK, BLOCK, padded.shape[1] // BLOCK, BLOCK)
    from scipy.fft import dctn  # imported here: only this method needs SciPy's FFT

    coefficients = dctn(blocks.transpose(0, 2, 1, 3), axes=(2, 3), norm="ortho")
    energy = np.sum(coefficients ** 2, axis=(2, 3)) - coefficients[:, :, 0, 0] ** 2
    return (energy / (BLOCK * BLOCK)).astype(np.float32)


def majority_vote(labels: np.ndarray, n_layers: int) -> np.ndarray:
    """3x3 majority filter of a label map (ties keep the lower layer index)."""
    votes = np.stack([cv2.boxFilter((labels == k).astype(np.float32), -1, (3, 3),
                                    normalize=False, borderType=cv2.BORDER_REPLICATE)
                      for k in range(n_layers)])
    return np.argmax(votes, axis=0).astype(np.uint16)


@register("dct", "DCT + variance: per 8x8 block the layer with the most AC energy, "
          "majority-voted, blocks copied")
def fuse_dct(layers: np.ndarray) -> FusionResult:
    layers = check_layers(layers)
    n_layers = layers.shape[0]
    variances = np.stack([block_variance(luma(layers[k]))
                          for k in progress(range(n_layers), desc="dct", total=n_layers)])
    labels = majority_vote(np.argmax(variances, axis=0), n_layers)
    total = np.maximum(variances.sum(axis=0), 1e-12)
    block_confidence = np.take_along_axis(variances, labels[None].astype(np.intp), 0)[0] / total
    height, width = layers.shape[1:3]

    def to_pixels(blocks: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(blocks, BLOCK, 0), BLOCK, 1)[:height, :width]

    focus_map = to_pixels(labels)
    return FusionResult(fused=gather(layers, focus_map), focus_map=focus_map,
                        confidence=to_pixels(block_confidence).astype(np.float32), method="dct")
