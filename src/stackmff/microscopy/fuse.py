"""Fuse a multichannel z-stack: the focus is decided on one channel (or their mean), and
every channel is taken from the layer chosen there.

Selection methods (``depthmap``, ``v3``, ``dct``, ``variance``) copy every pixel from the
layer their focus map names, so each channel is gathered with that map, in its own dtype:
exact. Methods that do not copy pixels (``pyramid``, ``dwt``, ``dtcwt``, ``mip``) apply the
same decision rule to each channel on its own; their focus map and heights come from the
focus channel.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from stackmff.errors import StackError
from stackmff.io.pixels import from_float, to_float
from stackmff.methods import Fuser
from stackmff.microscopy.axes import Metadata
from stackmff.runtime.allocator import release_free_memory
from stackmff.stack_ops import gather


@dataclass
class MicroscopyResult:
    """The fused image of a microscopy array, with what it says about itself.

    Attributes:
        fused: ``(T, C, Y, X)`` in the input's dtype (an xarray ``DataArray`` when the
            input was one).
        focus_map: ``(T, Y, X)`` layer index (Z plane) per pixel.
        confidence: ``(T, Y, X)`` float32 in [0, 1], or ``None`` for methods without one.
        heights: ``(T, Y, X)`` float32 in µm (plane index x Z step + Z origin); layer
            indices when the Z step is unknown (``heights_in_um`` is then ``False``).
        metadata: the input's physical sizes, Z origin and channels.
        method: the method's name.
    """

    fused: Any
    focus_map: np.ndarray
    confidence: np.ndarray | None
    heights: np.ndarray
    metadata: Metadata
    method: str
    heights_in_um: bool = True
    axes: str = "TCYX"


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


def heights(focus_map: np.ndarray, metadata: Metadata, where: str,
            warn: bool = True) -> tuple[np.ndarray, bool]:
    """Plane index x Z step + Z origin in µm, float32; without a Z step, the indices."""
    if metadata.size_z is None:
        if warn:
            warnings.warn(f"{where} has no Z step in its metadata: the height map holds "
                          "plane indices, not micrometres", stacklevel=2)
        return focus_map.astype(np.float32), False
    values = focus_map.astype(np.float64) * metadata.size_z + metadata.z_origin
    return values.astype(np.float32), True


def check_dtype(dtype: np.dtype, where: str) -> None:
    if dtype.kind not in "iuf":
        raise StackError(f"{where}: unsupported pixel type {dtype} (need integers or floats)")
