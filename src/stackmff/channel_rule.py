"""The channel rule for a multichannel z-stack: the focus is decided on one channel (or their
mean), and every channel is taken from the layer chosen there.

Selection methods (``depthmap``, ``v3``, ``dct``, ``variance``) copy every pixel from the
layer their focus map names, so each channel is gathered with that map, in its own dtype:
exact. Methods that do not copy pixels (``pyramid``, ``dwt``, ``dtcwt``, ``mip``) apply the
same decision rule to each channel on its own; their focus map and heights come from the
focus channel.
"""

from __future__ import annotations

import numpy as np

from stackmff.errors import StackError
from stackmff.io.pixels import from_float, to_float
from stackmff.methods import Fuser
from stackmff.runtime.allocator import release_free_memory
from stackmff.stack_ops import gather


def scaled(plane: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """A float32 copy in [0, 1] (by its own min and max), and that ``(min, range)``: channels
    use a small part of their type's range, and differ in brightness."""
    low, high = float(np.min(plane)), float(np.max(plane))
    value_range = (low, high - low if high > low else 1.0)
    return to_float(plane, value_range), value_range


def focus_plane(stack: np.ndarray, focus: int | str) -> np.ndarray:
    """The ``(Z, Y, X)`` float32 stack the decision is made on: one channel, or the mean of
    all channels, each scaled to [0, 1] first (channels differ in brightness)."""
    if focus != "mean":
        return scaled(stack[focus])[0]
    total = scaled(stack[0])[0]
    for c in range(1, stack.shape[0]):
        total += scaled(stack[c])[0]
    total /= np.float32(stack.shape[0])
    return total


def fuse_czyx(stack: np.ndarray, fuser: Fuser, selects: bool, focus: int | str,
              name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Fuse one ``(C, Z, Y, X)`` stack; returns ``(fused CYX, focus map, confidence)``."""
    decided = fuser(focus_plane(stack, focus))
    release_free_memory()  # the float focus plane is gone: its pages go back, not held as a hole
    if decided.focus_map is None:
        raise StackError(f"method {name!r} gives no focus map, which microscopy files need")
    focus_map = decided.focus_map
    if selects:
        fused = np.stack([gather(stack[c], focus_map) for c in range(stack.shape[0])])
        return fused, focus_map, decided.confidence
    planes = []
    for c in range(stack.shape[0]):
        layers, value_range = scaled(stack[c])
        result = decided if c == focus else fuser(layers)
        del layers
        planes.append(from_float(result.fused, stack.dtype, value_range))
    return np.stack(planes), focus_map, decided.confidence
