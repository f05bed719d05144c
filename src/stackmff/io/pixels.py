"""Pixels to float32 in [0, 1] and back: the one conversion every method, file and viewer
layer goes through, so that a value read and written again is the value it was.

Without a range, uint8/uint16 use their type's full range, as the files do. With a range
``(low, span)`` (a microscope's uint16 that fills a tenth of its type, a viewer's float
layer), values are scaled by that range; the arithmetic is float32 in place by default (a
copy of a large stack is not doubled) or float64 (``in_float64``: exact for wide integers).
"""

from __future__ import annotations

import numpy as np

INTEGER_TYPES = (np.uint8, np.uint16)


def to_float(image: np.ndarray, value_range: tuple[float, float] | None = None, *,
             in_float64: bool = False) -> np.ndarray:
    """Pixels -> float32 in [0, 1].

    Args:
        image: the pixels.
        value_range: ``(low, span)``: ``low`` becomes 0 and ``low + span`` becomes 1. Without
            it, uint8/uint16 are divided by their type's maximum and floats pass as float32.
        in_float64: with a range, compute in float64 and round once to float32.
    """
    if value_range is not None:
        low, span = value_range
        if in_float64:
            return ((np.asarray(image, np.float64) - low) / span).astype(np.float32)
        out = image.astype(np.float32)
        out -= np.float32(low)
        out *= np.float32(1.0 / span)
        return out
    if image.dtype in INTEGER_TYPES:
        return image.astype(np.float32) / np.float32(np.iinfo(image.dtype).max)
    return image.astype(np.float32, copy=False)


def from_float(image: np.ndarray, dtype: np.dtype,
               value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Float in [0, 1] -> ``dtype``, undoing :func:`to_float`.

    Without a range, ``dtype`` is uint8/uint16 and its full range is used (float32, rounded
    and clipped); an image already of that type passes through unchanged. With ``(low,
    span)``, the values are ``image * span + low`` in float64, rounded and clipped to the
    type's limits for integer types.
    """
    dtype = np.dtype(dtype)
    if value_range is not None:
        low, span = value_range
        values = np.asarray(image, np.float64) * span + low
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            values = np.clip(np.rint(values), info.min, info.max)
        return values.astype(dtype)
    if image.dtype == dtype:
        return image
    top = np.iinfo(dtype).max
    return np.clip(np.rint(np.asarray(image, np.float32) * top), 0, top).astype(dtype)
