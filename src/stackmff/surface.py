"""A focus map as a surface: each pixel's chosen layer is a height.

The heights are the focus map refined below one layer where the method measured a peak
(``FusionResult.depth``), smoothed with the confidence as weight, and sampled on a regular
grid whose step keeps the triangle count within a budget. The smoothing is a
confidence-weighted median over a square window, so unsure pixels take the height their sure
neighbours agree on, and a depth edge stays a step (a median picks one side, it never averages
across); the sub-layer heights are then averaged only among neighbours on the same layer.

Everything here is in pixel and layer units; :class:`SurfaceScale` turns them into µm (or
leaves pixels and layers where nothing says more). The file formats are written by
:mod:`stackmff.io.mesh`, the product is named and checked by :mod:`stackmff.outputs`; napari's
3D view uses the same surface.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import cv2
import numpy as np

from stackmff.errors import StackError
from stackmff.microscopy.axes import MICROMETRES

DEFAULT_FACES = 500_000
MIN_RADIUS = 2          # the smoothing window's least half-width (pixels)
FLOOR_WEIGHT = 1e-3     # the weight of a pixel with no confidence: it follows, never leads
OWN_VOTE = 0.5          # a pixel's own vote, as a share of its window's mean weight
LENGTH = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([^\s0-9.].*?)?\s*$")


def parse_length(text: str | float, flag: str = "--z-step") -> float:
    """A length with its unit (``0.05mm``, ``2 um``, ``500nm``, ``3µm``) in µm.

    Raises:
        StackError: no number, a unit that is not a length, or a length that is not positive.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, unit = float(text), "µm"
    else:
        found = LENGTH.match(str(text))
        if not found or not found.group(2):
            raise StackError(f"{flag} takes a length with its unit (e.g. 0.05mm, 2um, "
                             f"500nm), got {text!r}")
        value, unit = float(found.group(1)), found.group(2)
    factor = MICROMETRES.get(unit, MICROMETRES.get(unit.lower()))
    if factor is None:
        raise StackError(f"{flag} {text}: unknown unit {unit!r}; use nm, um (or µm), mm, cm "
                         "or m")
    if not (value > 0 and math.isfinite(value)):
        raise StackError(f"{flag} must be a positive length, got {text!r}")
    return value * factor


@dataclass(frozen=True)
class SurfaceScale:
    """How pixel and layer units become lengths.

    Attributes:
        size_x, size_y: the pixel size in µm; ``None``: x and y stay in pixels.
        z_step: the distance between layers in µm; ``None``: z stays in layers.
        z_origin: the height of layer 0 in µm (microscopy: the file's Z origin).
        towards_camera: photos: the first layer is focused nearest (the stack runs near to
            far), so heights rise towards the camera: layer 0 is the highest. A microscopy
            file's heights are its Z positions (index x Z step + origin), as ``--height-map``.
    """

    size_x: float | None = None
    size_y: float | None = None
    z_step: float | None = None
    z_origin: float = 0.0
    towards_camera: bool = False

    def units(self) -> dict[str, str]:
        """The unit of each axis, as the files record it."""
        return {"x": "um" if self.size_x else "pixel", "y": "um" if self.size_y else "pixel",
                "z": "um" if self.z_step else "layer"}

    def description(self, layers: int) -> dict:
        """What a mesh file records about its axes (glTF extras, PLY and OBJ comments)."""
        return {"units": self.units(), "pixel_size_um": [self.size_x, self.size_y],
                "z_step_um": self.z_step, "z_origin_um": self.z_origin, "layers": layers,
                "z": ("height towards the camera; layer 0 (focused nearest) is the highest"
                      if self.towards_camera else "layer index x Z step + Z origin")}


def confidence_weights(confidence: np.ndarray | None, layers: int,
                       shape: tuple[int, int]) -> np.ndarray:
    """The smoothing weight of each pixel: its confidence above chance (1 / layers), scaled
    to [0, 1], never quite 0; all 1 without a confidence."""
    if confidence is None:
        return np.ones(shape, np.float32)
    chance = 1.0 / max(layers, 2)
    weights = (np.asarray(confidence, np.float32) - chance) / np.float32(1.0 - chance)
    return np.clip(weights, FLOOR_WEIGHT, 1.0)


def refined_positions(focus_map: np.ndarray, depth: np.ndarray | None) -> np.ndarray:
    """The sub-layer position of each pixel: the method's refined position where it lies
    within half a layer of the map's layer (an edit or a smoothing of the map moved the
    others), else the layer itself."""
    levels = focus_map.astype(np.float32)
    if depth is None:
        return levels
    depth = np.asarray(depth, np.float32)
    return np.where(np.abs(depth - levels) <= 0.5, depth, levels)


def smooth_positions(focus_map: np.ndarray, positions: np.ndarray, weights: np.ndarray,
                     radius: int) -> np.ndarray:
    """Confidence-weighted median of the layers in a ``2 radius + 1`` square, then the
    weighted mean of the sub-layer positions of the neighbours on that layer.

    A pixel's own vote counts extra (:data:`OWN_VOTE`), so that a sure structure narrower
    than half the window (a wire, a corner) keeps its layer where all are equally sure,
    while a lone unsure pick follows its neighbours."""
    size = (2 * radius + 1, 2 * radius + 1)
    own = np.float32(OWN_VOTE)

    def window_mean(values: np.ndarray) -> np.ndarray:
        return cv2.blur(values, size, borderType=cv2.BORDER_REFLECT) + own * values

    half = window_mean(weights) * np.float32(0.5)
    below = np.zeros_like(half)
    decided = np.zeros(half.shape, bool)
    smoothed = positions.copy()
    for level in np.unique(focus_map):
        on_level = np.where(focus_map == level, weights, np.float32(0))
        share = window_mean(on_level)
        below += share
        median_here = ~decided & (below >= half)
        if not median_here.any():
            continue
        mean = window_mean(on_level * positions)
        smoothed[median_here] = mean[median_here] / np.maximum(share[median_here], 1e-12)
        decided |= median_here
    return smoothed


def grid_step(height: int, width: int, faces: int) -> int:
    """The least pixel step of a regular grid over the image with at most ``faces``
    triangles (two per cell)."""
    step = 1
    while 2 * _cells(height, step) * _cells(width, step) > faces:
        step += 1
    return step


def _cells(size: int, step: int) -> int:
    return max(1, len(_samples(size, step)) - 1)


def _samples(size: int, step: int) -> np.ndarray:
    """Pixel positions every ``step``, the last pixel always included."""
    positions = np.arange(0, size, step)
    return positions if positions[-1] == size - 1 else np.append(positions, size - 1)


@dataclass(frozen=True)
class Surface:
    """A height field on a regular grid of pixels.

    Attributes:
        rows, cols: the pixel row and column of each grid line.
        positions: ``(len(rows), len(cols))`` float32 focus position in layers.
        size: the image's ``(height, width)``.
        layers: the stack's layer count.
    """

    rows: np.ndarray
    cols: np.ndarray
    positions: np.ndarray
    size: tuple[int, int]
    layers: int

    @property
    def vertex_count(self) -> int:
        return self.positions.size

    @property
    def faces(self) -> np.ndarray:
        """Two triangles per grid cell, counter-clockwise seen from above, ``(F, 3)``."""
        gh, gw = self.positions.shape
        index = np.arange(gh * gw, dtype=np.int64).reshape(gh, gw)
        a, b = index[:-1, :-1].ravel(), index[:-1, 1:].ravel()
        c, d = index[1:, :-1].ravel(), index[1:, 1:].ravel()
        # rows run down the image and y up the surface: (a, c, b) turns counter-clockwise
        return np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)]).astype(np.int64)

    def vertices(self, scale: SurfaceScale = SurfaceScale()) -> np.ndarray:
        """``(V, 3)`` x, y, z: x along the columns, y up the image (row 0 at the top), z the
        height; in µm where ``scale`` knows the sizes, else pixels and layers."""
        height = self.size[0]
        y, x = np.meshgrid((height - 1 - self.rows).astype(np.float64),
                           self.cols.astype(np.float64), indexing="ij")
        z = self.positions.astype(np.float64)
        if scale.towards_camera:
            z = (self.layers - 1) - z
        x = x * (scale.size_x or 1.0)
        y = y * (scale.size_y or 1.0)
        z = z * (scale.z_step or 1.0) + (scale.z_origin if scale.z_step else 0.0)
        return np.stack([x.ravel(), y.ravel(), z.ravel()], 1)

    def uv(self) -> np.ndarray:
        """``(V, 2)`` texture coordinates of the pixel centres (v up, as glTF and OBJ read
        them through trimesh)."""
        height, width = self.size
        v, u = np.meshgrid(1.0 - (self.rows + 0.5) / height, (self.cols + 0.5) / width,
                           indexing="ij")
        return np.stack([u.ravel(), v.ravel()], 1)

    def sample(self, image: np.ndarray) -> np.ndarray:
        """The image's pixels at the vertices, ``(V[, C])``."""
        picked = np.asarray(image)[self.rows][:, self.cols]
        return picked.reshape((self.vertex_count,) + picked.shape[2:])


def make_surface(focus_map: np.ndarray, layers: int, *, depth: np.ndarray | None = None,
                 confidence: np.ndarray | None = None,
                 faces: int = DEFAULT_FACES) -> Surface:
    """The surface of one focus map.

    Args:
        focus_map: ``(H, W)`` layer indices.
        layers: the stack's layer count.
        depth: ``(H, W)`` the method's sub-layer positions (``FusionResult.depth``), or
            ``None``.
        confidence: ``(H, W)`` in [0, 1], or ``None`` (every pixel weighs the same).
        faces: the most triangles the grid may have.

    Raises:
        StackError: a face budget under 2 triangles, or maps of different shapes.
    """
    focus_map = np.asarray(focus_map)
    if isinstance(faces, bool) or not isinstance(faces, (int, np.integer)) or faces < 2:
        raise StackError(f"--mesh-faces must be a whole number of at least 2, got {faces!r}")
    for name, other in (("depth", depth), ("confidence", confidence)):
        if other is not None and np.shape(other) != focus_map.shape:
            raise StackError(f"the {name} is {np.shape(other)} but the focus map is "
                             f"{focus_map.shape}")
    height, width = focus_map.shape
    step = grid_step(height, width, int(faces))
    radius = max(MIN_RADIUS, step)
    weights = confidence_weights(confidence, layers, focus_map.shape)
    positions = smooth_positions(focus_map, refined_positions(focus_map, depth), weights,
                                 radius)
    rows, cols = _samples(height, step), _samples(width, step)
    # within the stack (a mean of equal values may round just past the last layer)
    grid = np.clip(positions[rows][:, cols], 0, layers - 1).astype(np.float32)
    return Surface(rows, cols, grid, (height, width), layers)


def texture_picture(image: np.ndarray, colours: list[str | None] | None = None) -> np.ndarray:
    """An 8-bit picture of a fused image for a mesh's texture or colours: ``(H, W)`` grey or
    ``(H, W, 3)``. 16-bit and float images are scaled by their type's range; a microscopy
    image ``(C, Y, X)`` is each channel stretched (0.1 to 99.9 percentile) in its colour and
    added, as a viewer shows it."""
    image = np.asarray(image)
    if colours is not None:
        return _channels_picture(image, colours)
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    return (np.clip(image.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)


DEFAULT_COLOURS = ("FF00FF", "00FF00", "00FFFF", "FF0000", "FFFF00", "0000FF")


def _channels_picture(image: np.ndarray, colours: list[str | None]) -> np.ndarray:
    if image.shape[0] == 1:
        return _stretched(image[0])
    total = np.zeros(image.shape[1:] + (3,), np.float32)
    for c, plane in enumerate(image):
        colour = colours[c] if c < len(colours) and colours[c] else \
            DEFAULT_COLOURS[c % len(DEFAULT_COLOURS)]
        rgb = np.array([int(colour[i:i + 2], 16) for i in (0, 2, 4)], np.float32)
        total += _stretched(plane).astype(np.float32)[..., None] * (rgb / 255.0)
    return np.clip(total + 0.5, 0, 255).astype(np.uint8)


def _stretched(plane: np.ndarray) -> np.ndarray:
    values = plane.astype(np.float32)
    finite = values[np.isfinite(values)]
    low, high = (np.percentile(finite[::max(1, finite.size // 1_000_000)], (0.1, 99.9))
                 if finite.size else (0.0, 1.0))
    scaled = (np.nan_to_num(values, nan=low) - low) / max(float(high - low), 1e-12)
    return (np.clip(scaled, 0, 1) * 255 + 0.5).astype(np.uint8)
