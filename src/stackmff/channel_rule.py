"""The channel rule for a multichannel z-stack: the focus is decided on one channel (or their
mean), and every channel is taken from the layer chosen there.

Selection methods (``depthmap``, ``v3``, ``dct``, ``variance``) copy every pixel from the
layer their focus map names, so each channel is gathered with that map, in its own dtype:
exact. Methods that do not copy pixels (``pyramid``, ``dwt``, ``dtcwt``, ``mip``) apply the
same decision rule to each channel on its own; their focus map and heights come from the
focus channel.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import cv2
import numpy as np

from stackmff.errors import StackError
from stackmff.io.pixels import from_float, to_float
from stackmff.methods import Fuser
from stackmff.result import FusionResult
from stackmff.runtime.allocator import release_free_memory
from stackmff.stack_ops import gather

NEUTRAL_WINDOW = 7  # a non-finite pixel takes the mean of its finite neighbours this wide


def scaled(plane: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """A float32 copy in [0, 1] (by its own min and max), and that ``(min, range)``: channels
    use a small part of their type's range, and differ in brightness."""
    return _scaled(plane)[:2]


def _scaled(plane: np.ndarray) -> tuple[np.ndarray, tuple[float, float], int]:
    """:func:`scaled`, and how many non-finite values (NaN, inf) it left out."""
    low, high = float(np.min(plane)), float(np.max(plane))
    if not (math.isfinite(low) and math.isfinite(high)):  # NaN or inf among float pixels
        return _scaled_finite(plane)
    value_range = (low, high - low if high > low else 1.0)
    return to_float(plane, value_range), value_range, 0


def _scaled_finite(plane: np.ndarray) -> tuple[np.ndarray, tuple[float, float], int]:
    """Scaled by the finite values alone (a NaN would make the whole range NaN), each
    non-finite pixel given the mean of its finite neighbours in its layer: no contrast of its
    own, so it draws the decision to no layer and the rest is decided as without it."""
    finite = np.isfinite(plane)
    values = plane[finite]
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    value_range = (low, high - low if high > low else 1.0)
    with np.errstate(invalid="ignore", over="ignore"):
        out = to_float(plane, value_range)
    for layer, known in zip(out.reshape((-1,) + out.shape[-2:]),
                            finite.reshape((-1,) + finite.shape[-2:])):
        if not known.all():
            _fill_from_neighbours(layer, known)
    return out, value_range, int(finite.size - values.size)


def _fill_from_neighbours(layer: np.ndarray, known: np.ndarray) -> None:
    """Each unknown pixel of a float32 ``(Y, X)`` layer, in place: the mean of the known
    pixels around it, or of the whole layer where none is near."""
    weights = known.astype(np.float32)
    values = np.where(known, layer, np.float32(0))
    window = (NEUTRAL_WINDOW, NEUTRAL_WINDOW)
    total, count = cv2.blur(values, window), cv2.blur(weights, window)
    mean = np.float32(values.sum() / weights.sum()) if weights.any() else np.float32(0)
    near = np.where(count > 0, total / np.maximum(count, np.float32(1e-12)), mean)
    layer[~known] = near[~known]


def focus_plane(stack: np.ndarray, focus: int | str) -> np.ndarray:
    """The ``(Z, Y, X)`` float32 stack the decision is made on: one channel, or the mean of
    all channels, each scaled to [0, 1] first (channels differ in brightness). Non-finite
    values are left out of it, with a warning that counts them."""
    channels = [focus] if focus != "mean" else range(stack.shape[0])
    total, ignored = None, 0
    for c in channels:
        layers, _, left_out = _scaled(stack[c])
        ignored += left_out
        if total is None:
            total = layers
        else:
            total += layers
    if focus == "mean":
        total /= np.float32(stack.shape[0])
    if ignored:
        warnings.warn(f"{ignored} non-finite pixel values (NaN or infinite) were left out of "
                      "the focus decision; the output keeps them where their layer is chosen",
                      stacklevel=2)
    return total


def fuse_czyx(stack: np.ndarray, fuser: Fuser, selects: bool, focus: int | str,
              name: str) -> FusionResult:
    """Fuse one ``(C, Z, Y, X)`` stack: the fused ``CYX`` in the stack's dtype, with the
    focus channel's focus map, confidence and sub-layer depth."""
    decided = fuser(focus_plane(stack, focus))
    release_free_memory()  # the float focus plane is gone: its pages go back, not held as a hole
    if decided.focus_map is None:
        raise StackError(f"method {name!r} gives no focus map, which microscopy files need")
    focus_map = decided.focus_map
    if selects:
        fused = np.stack([gather(stack[c], focus_map) for c in range(stack.shape[0])])
        return dataclasses.replace(decided, fused=fused)
    planes = []
    for c in range(stack.shape[0]):
        layers, value_range = scaled(stack[c])
        result = decided if c == focus else fuser(layers)
        del layers
        planes.append(from_float(result.fused, stack.dtype, value_range))
    return dataclasses.replace(decided, fused=np.stack(planes))
