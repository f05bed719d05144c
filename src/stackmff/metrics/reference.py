"""Reference metrics under one protocol (the paper's): 8-bit grey, scikit-image defaults.

Images in [0, 1] (any bit depth) are rounded to 8 bit per channel, converted to BT.601
luma with OpenCV's rounding, and compared with scikit-image's PSNR and SSIM at data range
255. Colour PSNR compares the 8-bit RGB images. Higher is better for all three.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from stackmff.io.pixels import from_float, to_float


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float [0, 1] or uint16 or uint8 -> uint8."""
    image = np.asarray(image)
    if image.dtype == np.uint16:
        image = to_float(image)
    return from_float(image, np.uint8)


def grey8(image: np.ndarray) -> np.ndarray:
    """8-bit BT.601 luma of an RGB or grey image."""
    image = to_uint8(image)
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def _check_pair(result: np.ndarray, reference: np.ndarray) -> None:
    if result.shape[:2] != reference.shape[:2]:
        raise ValueError(f"images differ in size: {result.shape} vs reference {reference.shape}")


def _psnr8(result: np.ndarray, reference: np.ndarray) -> float:
    if np.array_equal(result, reference):
        return float("inf")
    return float(peak_signal_noise_ratio(reference, result, data_range=255))


def psnr(result: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB on 8-bit grey."""
    _check_pair(result, reference)
    return _psnr8(grey8(result), grey8(reference))


def ssim(result: np.ndarray, reference: np.ndarray) -> float:
    """SSIM (scikit-image defaults, 7x7 window) on 8-bit grey."""
    _check_pair(result, reference)
    return float(structural_similarity(grey8(reference), grey8(result), data_range=255))


def psnr_colour(result: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB on 8-bit RGB (equals grey PSNR for grey images)."""
    _check_pair(result, reference)
    return _psnr8(to_uint8(result), to_uint8(reference))


@dataclass
class Scores:
    psnr: float
    ssim: float
    psnr_colour: float


def score(result: np.ndarray, reference: np.ndarray) -> Scores:
    """All reference metrics of ``result`` against ``reference``."""
    return Scores(psnr(result, reference), ssim(result, reference), psnr_colour(result, reference))
