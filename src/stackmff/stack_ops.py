"""The operations every method shares: the stack check, BT.601 luma, colour planes, the
gather.

Every output pixel of a selection method is ``layers[focus_map[y, x], y, x]`` (the paper's
fidelity); the gather that composes it lives here, once, for fusion, retouching, training and
evaluation alike.
"""

from __future__ import annotations

import numpy as np

from stackmff.errors import StackError
from stackmff.io.pixels import INTEGER_TYPES, to_float

BT601 = np.array([0.299, 0.587, 0.114], np.float32)


def check_stack_shape(shape: tuple[int, ...], hint: str = "") -> None:
    """Refuse, in one line, a shape that is not a focus stack ``(L, H, W[, 3])`` of two
    layers or more: every entry point (methods, retouching, Dask arrays, the viewer,
    registration) asks this one question.

    Args:
        hint: appended to the message about the shape (what to choose instead).

    Raises:
        StackError: the wrong number of axes, a colour axis that is not RGB, or one layer.
    """
    shape = tuple(shape)
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] != 3):
        raise StackError(f"a focus stack is (L, H, W) or (L, H, W, 3), got shape {shape}{hint}")
    if shape[0] < 2:
        raise StackError(f"a focus stack needs at least 2 layers, got {shape[0]}")


def check_layers(layers: np.ndarray, keep_integers: bool = False) -> np.ndarray:
    """Validate a stack ``(L, H, W[, 3])``: float in [0, 1], or the files' uint8/uint16.

    Returns it as float32 (integers scaled by :func:`to_float`); with ``keep_integers``,
    integer stacks come back as they are, for methods that convert a layer or a tile at a
    time (a whole stack in float32 is four times its 8-bit size).

    Raises:
        StackError: not a stack (:func:`check_stack_shape`).
    """
    layers = np.asarray(layers)
    check_stack_shape(layers.shape)
    if keep_integers and layers.dtype in INTEGER_TYPES:
        return layers
    return to_float(layers)


def window_luma(layers: np.ndarray, rows: slice = slice(None),
                cols: slice = slice(None)) -> np.ndarray:
    """Float32 luma ``(L, h, w)`` of a window of every layer, converted one layer at a time:
    the same values as ``luma(to_float(layers))[:, rows, cols]``."""
    first = layers[0, rows, cols]
    grey = np.empty((layers.shape[0], *first.shape[:2]), np.float32)
    for k in range(layers.shape[0]):
        grey[k] = luma(to_float(layers[k, rows, cols]))
    return grey


def luma(image: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB image or stack (last axis = colour); grey passes through."""
    if image.ndim >= 3 and image.shape[-1] == 3:
        return image @ BT601
    return image


def channels(layer: np.ndarray) -> list[np.ndarray]:
    """The colour planes of one layer (one plane for grey)."""
    return [layer] if layer.ndim == 2 else [layer[..., c] for c in range(layer.shape[-1])]


def gather(layers: np.ndarray, focus_map: np.ndarray) -> np.ndarray:
    """``fused[y, x] = layers[focus_map[y, x], y, x]``: every pixel copied from a layer."""
    index = focus_map.astype(np.intp)[None, ...]
    if layers.ndim == 4:
        index = index[..., None]
    return np.take_along_axis(layers, index, axis=0)[0]
