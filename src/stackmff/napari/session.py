"""What the fuse widget computes, apart from any display: fuse an image layer's pixels, re-gather
the fused image from a painted Labels layer, save it.

Labels are layer index + 1. napari's Labels layer treats 0 as "no label" (transparent, and
what its eraser paints), so label ``k + 1`` takes layer ``k``, and an erased pixel (0) goes
back to the method's own choice. Re-gathering copies every pixel whose layer was changed
from that layer, exactly, and leaves every other pixel as the method made it; the
confidence becomes 0 where the layer was changed (as ``stackmff regather`` does).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stackmff.api import prepare_method, save_result
from stackmff.errors import StackError
from stackmff.io import Stack
from stackmff.io.pixels import from_float, to_float
from stackmff.methods import get_method
from stackmff.outputs import OutputPlan
from stackmff.result import FusionResult
from stackmff.retouch import check_focus_map, regather_edit
from stackmff.stack_ops import check_stack_shape, gather
from stackmff.surface import DEFAULT_FACES, Surface, make_surface, texture_picture

FILE_TYPES = (np.dtype(np.uint8), np.dtype(np.uint16))


@dataclass(frozen=True)
class UnitScale:
    """How a layer's pixel values map to the methods' [0, 1] floats, and back.

    8- and 16-bit layers use their type's range (as the files do); other types use 0..1 when
    their values lie there, else their own minimum and maximum.
    """

    dtype: np.dtype
    low: float = 0.0
    high: float = 1.0

    @classmethod
    def of(cls, data: np.ndarray) -> UnitScale:
        """The scale for ``data``.

        Raises:
            StackError: a pixel type that is not a number, or values that are not finite.
        """
        dtype = np.dtype(data.dtype)
        if dtype in FILE_TYPES:
            return cls(dtype, 0.0, float(np.iinfo(dtype).max))
        if dtype == np.bool_ or not np.issubdtype(dtype, np.number) \
                or np.issubdtype(dtype, np.complexfloating):
            raise StackError(f"cannot fuse a layer of pixel type {dtype}")
        low, high = float(np.min(data)), float(np.max(data))
        if not (np.isfinite(low) and np.isfinite(high)):
            raise StackError("cannot fuse a layer that holds NaN or infinite values")
        if np.issubdtype(dtype, np.floating) and low >= 0.0 and high <= 1.0:
            low, high = 0.0, 1.0
        return cls(dtype, low, high if high > low else low + 1.0)

    @property
    def output_dtype(self) -> np.dtype:
        """The pixel type a saved image gets: the layer's own, or 16 bit for other types."""
        return self.dtype if self.dtype in FILE_TYPES else np.dtype(np.uint16)

    @property
    def value_range(self) -> tuple[float, float] | None:
        """``(low, span)`` for :func:`~stackmff.io.pixels.to_float`; ``None`` for the file
        types, which use their type's range."""
        return None if self.dtype in FILE_TYPES else (self.low, self.high - self.low)

    def to_unit(self, data: np.ndarray) -> np.ndarray:
        """Pixels -> float32 in [0, 1]."""
        if self.dtype in FILE_TYPES:
            data = np.asarray(data, self.dtype)
        return to_float(data, self.value_range, in_float64=True)

    def from_unit(self, image: np.ndarray) -> np.ndarray:
        """float in [0, 1] -> the layer's pixel type."""
        return from_float(image, self.dtype, self.value_range)


@dataclass(frozen=True)
class Retouched:
    """The fused image that an edited map gives.

    Attributes:
        fused: ``(H, W[, 3])`` in the stack's pixel type.
        focus_map: ``(H, W)`` 0-based layer indices after the edit.
        confidence: ``(H, W)`` float32, 0 where the layer was changed; ``None`` if the method
            has no confidence.
        changed: ``(H, W)`` bool, where the layer differs from the method's choice.
    """

    fused: np.ndarray
    focus_map: np.ndarray
    confidence: np.ndarray | None
    changed: np.ndarray


@dataclass(frozen=True)
class FuseSession:
    """One fusion of a stack layer, and what retouching it needs.

    Attributes:
        layers: ``(L, H, W[, 3])`` the stack that was fused (aligned, if asked), in the
            source layer's pixel type.
        scale: how those pixels map to [0, 1].
        method: the fusion method's name.
        fused: ``(H, W[, 3])`` the method's fused image, in the same pixel type.
        focus_map: ``(H, W)`` the method's 0-based layer indices.
        confidence: ``(H, W)`` float32 in [0, 1], or ``None``.
        paths: the file of every layer, where known (saving never overwrites them).
        offset: ``(y, x)`` pixels of the layers within the source layer (alignment crops).
        aligned: whether the layers were registered (then they differ from the source).
        depth: ``(H, W)`` the method's sub-layer focus positions, or ``None``.
    """

    layers: np.ndarray
    scale: UnitScale
    method: str
    fused: np.ndarray
    focus_map: np.ndarray
    confidence: np.ndarray | None
    paths: tuple[str, ...] = ()
    offset: tuple[int, int] = (0, 0)
    aligned: bool = False
    depth: np.ndarray | None = None

    def labels(self) -> np.ndarray:
        """The focus map as napari labels: layer index + 1."""
        dtype = np.uint8 if len(self.layers) < 255 else np.uint16
        return (self.focus_map + 1).astype(dtype)

    def regather(self, labels: np.ndarray) -> Retouched:
        """The fused image, map and confidence that edited ``labels`` give.

        Raises:
            StackError: labels of another size, or naming a layer the stack does not have.
        """
        focus_map = self.edited_map(labels)
        changed = focus_map != self.focus_map
        fused, confidence = regather_edit(self.layers, focus_map, changed, self.confidence,
                                          fused=self.fused)
        return Retouched(fused, focus_map, confidence, changed)

    def edited_map(self, labels: np.ndarray) -> np.ndarray:
        """0-based layer indices from labels; 0 (no label) keeps the method's choice."""
        labels = np.asarray(labels)
        n = len(self.layers)
        check_focus_map(labels, size=self.focus_map.shape)
        if labels.size and (labels.min() < 0 or labels.max() > n):
            bad = int(labels.max() if labels.max() > n else labels.min())
            y, x = np.argwhere(labels == bad)[0]
            raise StackError(f"label {bad} (first at x={x}, y={y}) names no layer: the stack has "
                             f"{n} layers, labels 1-{n} (0 keeps the method's choice)")
        return np.where(labels == 0, self.focus_map, labels.astype(np.int64) - 1)

    def surface(self, labels: np.ndarray | None = None,
                faces: int = DEFAULT_FACES) -> tuple[Surface, np.ndarray]:
        """The surface of the (edited) focus map, as ``stackmff fuse --mesh`` makes it (the
        painted pixels count as sure), and its vertex colours ``(V, 4)`` in [0, 1] from the
        (re-gathered) fused image."""
        if labels is None:
            focus_map, fused, confidence = self.focus_map, self.fused, self.confidence
        else:
            retouched = self.regather(labels)
            focus_map, fused = retouched.focus_map, retouched.fused
            confidence = None if retouched.confidence is None else \
                np.where(retouched.changed, np.float32(1), retouched.confidence)
        surface = make_surface(focus_map, len(self.layers), depth=self.depth,
                               confidence=confidence, faces=faces)
        picture = self.picture(fused)
        colours = surface.sample(picture).astype(np.float32) / 255
        if colours.ndim == 1:
            colours = np.repeat(colours[:, None], 3, axis=1)
        return surface, np.concatenate([colours, np.ones((len(colours), 1), np.float32)], 1)

    def picture(self, fused: np.ndarray) -> np.ndarray:
        """The fused image as 8-bit for display (a mesh's colours)."""
        return texture_picture(self.scale.to_unit(fused))

    def save(self, output: str | Path, labels: np.ndarray) -> list[Path]:
        """Write the retouched image, its focus map and its confidence, all together.

        ``photo.png`` also gets ``photo_focus_map.png`` (the colour picture),
        ``photo_focus_map_indices.png`` (the 0-based indices that ``stackmff regather``
        reads) and, where the method has one, ``photo_confidence.png``.

        Returns:
            The paths written.

        Raises:
            StackError: an output that is one of the stack's files, an unsupported file type,
                or labels that name no layer; nothing is written then.
        """
        output = Path(output)
        retouched = self.regather(labels)
        result = FusionResult(self.scale.to_unit(retouched.fused), retouched.focus_map,
                              retouched.confidence, self.method)
        stack = Stack(self.scale.to_unit(self.layers), self.scale.output_dtype,
                      [Path(p) for p in self.paths])
        plan = OutputPlan.beside(output, focus_map=True,
                                 confidence=retouched.confidence is not None)
        return save_result(result, stack, plan.image, focus_map=plan.focus_map,
                           confidence=plan.confidence)


def fuse_layer(data: np.ndarray, method: str, *, align: bool = False,
               options: dict | None = None,
               paths: Sequence[str] = ()) -> Generator[str, None, FuseSession]:
    """Fuse an image layer's stack, as a generator for a worker thread.

    Yields a short description of each stage as it begins (for a progress bar), and returns
    (``StopIteration.value``, napari's ``worker.returned``) the :class:`FuseSession`.

    Args:
        data: ``(L, H, W)`` or ``(L, H, W, 3)``, any numeric pixel type.
        method: a name from :func:`stackmff.list_methods`.
        align: register the layers first (:func:`stackmff.registration.align_stack`).
        options: the method's options (those the widget shows: ``precision``, ``blend``).
        paths: the file of every layer, where known.

    Raises:
        StackError: a layer that is not a stack, an unknown method or option, a failed
            alignment, or a method that makes no focus map.
    """
    data = np.asarray(data)
    check_stack_shape(data.shape, hint=": choose an image layer with a Z axis")
    scale = UnitScale.of(data)
    yield f"preparing {method}"
    fuser = prepare_method(method, **(options or {}))
    unit = scale.to_unit(data)
    paths, offset = tuple(paths), (0, 0)
    if align:
        yield "aligning the layers"
        data, unit, paths, offset = _aligned(unit, scale, paths)
    yield f"fusing {len(data)} layers with {method}"
    result = fuser(unit)
    if result.focus_map is None:
        raise StackError(f"method {method!r} makes no focus map to show or retouch")
    if get_method(method).copies_pixels(**(options or {})):
        fused = gather(data, result.focus_map)  # the exact source pixels, in their own type
    else:
        fused = scale.from_unit(result.fused)
    return FuseSession(data, scale, method, fused, result.focus_map, result.confidence,
                       paths, offset, align, result.depth)


def _aligned(unit: np.ndarray, scale: UnitScale, paths: tuple[str, ...]
             ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[int, int]]:
    from stackmff.registration import align_stack

    try:
        alignment = align_stack(unit)
    except ValueError as exc:
        raise StackError(str(exc)) from None
    data = scale.from_unit(alignment.layers)
    kept = tuple(paths[k] for k in alignment.indices) if paths else ()
    y0, _, x0, _ = alignment.crop
    return data, scale.to_unit(data), kept, (int(y0), int(x0))
