"""Align every layer of a focus stack to a reference layer.

Each layer is registered to its neighbour (towards the reference), where defocus differs
least, and the transforms are composed along the chain; optionally each composed transform
is refined directly against the reference. A layer whose match stays below the tolerance is
reported by index and then dropped, kept unaligned, or made an error, as the caller chooses;
the chain then skips it. Estimation runs on a downscaled copy; the transforms are applied at
full resolution and full bit depth.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import cv2
import numpy as np

from stackmff.errors import StackError
from stackmff.registration.estimate import MODELS, estimate_pair, prepare
from stackmff.stack_ops import check_stack_shape

FAILURE_POLICIES = ("drop", "keep", "error")
# Fewer pixels a side leave phase correlation and ECC nothing to work on (OpenCV refuses a
# 1-pixel window outright); the working copy is never shrunk below this either.
MIN_SIDE = 16


@dataclass
class Alignment:
    """Result of :func:`align_stack`.

    Attributes:
        layers: the aligned layers ``(L', H', W'[, C])`` (cropped unless ``keep_size``).
        transforms: ``(L', 3, 3)``; each maps reference pixel coordinates to the coordinates
            of the original layer (full resolution).
        indices: which input layer each output layer is.
        valid: ``(L', H', W')`` bool, where the layer had real pixels before any filling.
        crop: ``(y0, y1, x0, x1)`` of the output within the reference frame.
        failed: input indices whose alignment stayed below the tolerance.
        scores: correlation score of each input layer's final match (reference: 1.0).
    """

    layers: np.ndarray
    transforms: np.ndarray
    indices: list[int]
    valid: np.ndarray
    crop: tuple[int, int, int, int]
    failed: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)


def _work_scale(shape: tuple[int, int], work_size: int) -> float:
    """Shrink the longest side to ``work_size``, but never the shortest below MIN_SIDE."""
    return min(1.0, max(work_size / max(shape), MIN_SIDE / min(shape)))


def estimate_transforms(layers: np.ndarray, reference: int, model: str, work_size: int = 1024,
                        blur: float = 1.5, refine: bool = True,
                        tolerance: float = 0.6) -> tuple[np.ndarray, list[float]]:
    """Full-resolution transforms (reference -> layer) and match scores for every layer."""
    n = layers.shape[0]
    scale = _work_scale(layers.shape[1:3], work_size)
    size = (max(1, round(layers.shape[2] * scale)), max(1, round(layers.shape[1] * scale)))
    work = [prepare(cv2.resize(layer, size, interpolation=cv2.INTER_AREA), blur)
            for layer in layers]
    transforms = np.repeat(np.eye(3)[None], n, axis=0)
    scores = [1.0] * n
    for direction in (1, -1):
        anchor = reference  # last layer that aligned: the chain continues from it
        for k in range(reference + direction, n if direction == 1 else -1, direction):
            pair = estimate_pair(work[k], work[anchor], model)
            composed = pair.matrix @ transforms[anchor]
            score = pair.score
            if refine:
                direct = estimate_pair(work[k], work[reference], model, initial=composed)
                if direct.score > score:
                    composed, score = direct.matrix, direct.score
            transforms[k], scores[k] = composed, score
            if score >= tolerance:
                anchor = k
    to_full = np.diag([1 / scale, 1 / scale, 1.0])
    full = np.array([to_full @ m @ np.linalg.inv(to_full) for m in transforms])
    return full, scores


def warp_layer(layer: np.ndarray, transform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Resample a layer into the reference frame; returns (warped, valid mask)."""
    height, width = layer.shape[:2]
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    matrix = transform.astype(np.float64)
    warped = cv2.warpPerspective(layer, matrix, (width, height), flags=flags,
                                 borderMode=cv2.BORDER_REPLICATE)
    ones = np.ones((height, width), np.uint8)
    valid = cv2.warpPerspective(ones, matrix, (width, height),
                                flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    return np.clip(warped, 0.0, 1.0), valid


def common_crop(valid: np.ndarray) -> tuple[int, int, int, int]:
    """An axis-aligned rectangle inside the area every layer covers (greedy shrinking)."""
    common = np.all(valid, axis=0)
    if not common.any():
        raise StackError("the aligned layers have no area in common; try --keep-size")
    rows, cols = np.where(common.any(axis=1))[0], np.where(common.any(axis=0))[0]
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    while y1 - y0 > 1 and x1 - x0 > 1:
        window = common[y0:y1, x0:x1]
        bad = [(~window[0]).sum(), (~window[-1]).sum(), (~window[:, 0]).sum(),
               (~window[:, -1]).sum()]
        worst = int(np.argmax(bad))
        if bad[worst] == 0:
            break
        if worst == 0:
            y0 += 1
        elif worst == 1:
            y1 -= 1
        elif worst == 2:
            x0 += 1
        else:
            x1 -= 1
    return int(y0), int(y1), int(x0), int(x1)


def fill_from_nearest_layer(layers: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace each layer's uncovered pixels with the nearest (by index) covering layer."""
    filled = layers.copy()
    n = layers.shape[0]
    for k in range(n):
        missing = ~valid[k]
        for distance in range(1, n):
            if not missing.any():
                break
            for j in (k - distance, k + distance):
                if 0 <= j < n:
                    take = missing & valid[j]
                    filled[k][take] = layers[j][take]
                    missing &= ~take
    return filled


def check_sizes(shape: tuple[int, int], tolerance: float, work_size: int) -> None:
    """Refuse, before any work, layers too small to register and out-of-range settings.

    Raises:
        StackError: naming the limit that is not met.
    """
    height, width = shape
    if min(height, width) < MIN_SIDE:
        raise StackError(f"registration needs layers of at least {MIN_SIDE} pixels a side; "
                         f"these are {width}x{height}")
    if (isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Real)
            or not 0.0 <= tolerance <= 1.0):  # NaN fails both comparisons
        raise StackError(f"tolerance must be a number in 0..1, got {tolerance!r}")
    if (isinstance(work_size, bool) or not isinstance(work_size, numbers.Integral)
            or work_size < MIN_SIDE):
        raise StackError(f"work_size must be a whole number of at least {MIN_SIDE} pixels, "
                         f"got {work_size!r}")


def align_stack(layers: np.ndarray, reference: int | str = "middle", model: str = "similarity",
                keep_size: bool = False, on_failure: str = "error", refine: bool = True,
                tolerance: float = 0.6, work_size: int = 1024) -> Alignment:
    """Align a stack ``(L, H, W[, 3])`` float32 in [0, 1] to one of its layers.

    Args:
        reference: ``"middle"`` or a layer index.
        model: ``"translation"``, ``"similarity"``, ``"affine"`` or ``"homography"``.
        keep_size: keep the full frame and fill uncovered borders from the nearest layer that
            covers them, instead of cropping to the area every layer covers.
        on_failure: for layers that match below ``tolerance``: ``"error"`` raises a
            StackError naming them, ``"drop"`` leaves them out, ``"keep"`` keeps them
            unaligned.
        refine: also match every layer directly against the reference.
        tolerance: least correlation score of an accepted match (0..1).
        work_size: longest side of the copy the transforms are estimated on (its shortest
            side is kept at MIN_SIDE pixels or more).

    Raises:
        StackError: layers smaller than MIN_SIDE pixels a side, a tolerance outside 0..1,
            no layer aligning to the reference, or (``on_failure="error"``) any layer that
            cannot be aligned.
    """
    layers = np.asarray(layers, np.float32)
    check_stack_shape(layers.shape)
    n = layers.shape[0]
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if on_failure not in FAILURE_POLICIES:
        raise ValueError(f"on_failure must be one of {FAILURE_POLICIES}, got {on_failure!r}")
    ref = n // 2 if reference == "middle" else int(reference)
    if not 0 <= ref < n:
        raise ValueError(f"reference layer {reference} is outside 0..{n - 1}")
    check_sizes(layers.shape[1:3], tolerance, work_size)
    transforms, scores = estimate_transforms(layers, ref, model, work_size, refine=refine,
                                             tolerance=tolerance)
    failed = [k for k in range(n) if scores[k] < tolerance]
    if len(failed) == n - 1 and on_failure != "keep":
        best = max(scores[k] for k in failed)
        raise StackError(f"no other layer could be aligned to the reference layer {ref} "
                         f"(best score {best:.2f}, tolerance {tolerance:g}); the reference may be "
                         f"blank, noise or far out of focus: choose another with --reference K")
    if failed and on_failure == "error":
        shown = ", ".join(f"{k} (score {scores[k]:.2f})" for k in failed)
        raise StackError(f"could not align layer(s) {shown}; use --on-failure drop or keep")
    keep = [k for k in range(n) if not (k in failed and on_failure == "drop")]
    if len(keep) < 2:
        raise StackError("fewer than 2 layers could be aligned")
    for k in failed:
        transforms[k] = np.eye(3)
    warped, valid = zip(*(warp_layer(layers[k], transforms[k]) for k in keep))
    aligned, valid = np.stack(warped), np.stack(valid)
    height, width = layers.shape[1:3]
    if keep_size:
        aligned, crop = fill_from_nearest_layer(aligned, valid), (0, height, 0, width)
    else:
        crop = common_crop(valid)
        y0, y1, x0, x1 = crop
        aligned, valid = aligned[:, y0:y1, x0:x1], valid[:, y0:y1, x0:x1]
    return Alignment(layers=np.ascontiguousarray(aligned), transforms=transforms[keep],
                     indices=keep, valid=valid, crop=crop, failed=failed, scores=scores)
