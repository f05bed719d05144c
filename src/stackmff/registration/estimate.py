"""Estimate the transform between two layers of a focus stack.

Enhanced correlation coefficient maximisation (Evangelidis & Psarakis, "Parametric image
alignment using enhanced correlation coefficient maximization", IEEE TPAMI 30(10), 2008),
coarse to fine, started from phase correlation. The ECC criterion is invariant to gain and
offset, so exposure and white-balance drift between layers do not bias it; both images are
blurred alike first, so that a sharp and a defocused layer still compare.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from stackmff.stack_ops import luma

MODELS = ("translation", "similarity", "affine", "homography")
_ECC_MOTION = {"translation": cv2.MOTION_TRANSLATION, "similarity": cv2.MOTION_AFFINE,
               "affine": cv2.MOTION_AFFINE, "homography": cv2.MOTION_HOMOGRAPHY}


@dataclass
class PairEstimate:
    """``matrix`` (3x3) maps coordinates of the fixed image to the moving image;
    ``score`` is the final correlation coefficient (1 = identical up to gain and offset)."""

    matrix: np.ndarray
    score: float


def prepare(image: np.ndarray, blur: float) -> np.ndarray:
    """Grey float32 image, smoothed and with zero mean and unit variance."""
    grey = cv2.GaussianBlur(luma(image).astype(np.float32), (0, 0), blur)
    return (grey - grey.mean()) / (grey.std() + 1e-6)


def _pyramid(image: np.ndarray, smallest: int) -> list[np.ndarray]:
    levels = [image]
    while min(levels[-1].shape) // 2 >= smallest:
        levels.append(cv2.pyrDown(levels[-1]))
    return levels[::-1]  # coarse first


def to_similarity(matrix: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The similarity (rotation, uniform scale, shift) closest to an affine map on the image."""
    height, width = shape
    ys, xs = np.mgrid[0:height:8j, 0:width:8j]
    source = np.stack([xs.ravel(), ys.ravel()], axis=1)
    target = source @ matrix[:2, :2].T + matrix[:2, 2]
    fitted, _ = cv2.estimateAffinePartial2D(source.astype(np.float32), target.astype(np.float32),
                                            method=cv2.LMEDS)
    result = np.eye(3)
    result[:2] = fitted
    return result


def estimate_pair(moving: np.ndarray, fixed: np.ndarray, model: str,
                  initial: np.ndarray | None = None, smallest: int = 48,
                  iterations: int = 60, epsilon: float = 1e-5) -> PairEstimate:
    """Find the ``model`` transform that maps ``fixed`` coordinates onto ``moving``.

    Both images must be prepared (:func:`prepare`) and the same size. ``initial`` (3x3) is a
    starting guess; without one, phase correlation on the coarsest level gives the shift.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    fixed_levels, moving_levels = _pyramid(fixed, smallest), _pyramid(moving, smallest)
    scale = fixed_levels[0].shape[0] / fixed.shape[0]
    if initial is None:
        (dx, dy), _ = cv2.phaseCorrelate(fixed_levels[0], moving_levels[0],
                                         cv2.createHanningWindow(fixed_levels[0].shape[::-1],
                                                                 cv2.CV_32F))
        matrix = np.array([[1, 0, dx / scale], [0, 1, dy / scale], [0, 0, 1]], np.float64)
    else:
        matrix = np.asarray(initial, np.float64).copy()
    motion = _ECC_MOTION[model]
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, epsilon)
    score = -1.0
    for fixed_level, moving_level in zip(fixed_levels, moving_levels):
        s = fixed_level.shape[0] / fixed.shape[0]
        scaling = np.diag([s, s, 1.0])
        warp = scaling @ matrix @ np.linalg.inv(scaling)
        warp = warp[:2].astype(np.float32) if motion != cv2.MOTION_HOMOGRAPHY else warp.astype(np.float32)
        try:
            score, warp = cv2.findTransformECC(fixed_level, moving_level, warp, motion, criteria,
                                               None, 1)
        except cv2.error:
            return PairEstimate(matrix, -1.0)  # did not converge
        full = np.eye(3)
        full[: warp.shape[0]] = warp
        matrix = np.linalg.inv(scaling) @ full @ scaling
        if model == "similarity":
            matrix = to_similarity(matrix, fixed.shape)
    return PairEstimate(matrix, float(score))
