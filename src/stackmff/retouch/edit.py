"""An edited focus map turned back into an image: every pixel the edit decided is gathered
again from the layer the map names, and its confidence becomes 0.

A selection method's fused image is fully described by its stack and its focus map
(``fused[y, x] = layers[focus_map[y, x], y, x]``, the paper's fidelity). A retouch is therefore
an edit of the map followed by a re-gather: it stays exact (every pixel is still copied from
one layer, nothing is blended or invented), and the map still says where each pixel came from.
The confidence is the method's certainty in its own choice, so it is 0 wherever a person (or
a rule such as the halo limiter) chose instead.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from stackmff.errors import StackError
from stackmff.io import Stack
from stackmff.result import FusionResult
from stackmff.retouch.maps import Side, check_confidence, check_focus_map, paint, prefer
from stackmff.stack_ops import check_layers, gather


def regather(stack: Stack | np.ndarray, focus_map: np.ndarray) -> np.ndarray:
    """The fused image that a focus map selects from a stack.

    Args:
        stack: a :class:`~stackmff.Stack`, or a float array ``(L, H, W[, 3])``.
        focus_map: ``(H, W)`` integer layer indices, 0-based.

    Returns:
        ``(H, W[, 3])`` float32: each pixel copied from the layer the map names.

    Raises:
        StackError: the stack or map has the wrong shape, or the map names a layer the stack
            does not have.
    """
    layers = _layers_of(stack)
    return gather(layers, check_focus_map(focus_map, len(layers), layers.shape[1:3]))


def regather_edit(layers: np.ndarray, focus_map: np.ndarray, decided: np.ndarray | None,
                  confidence: np.ndarray | None = None, fused: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """The image and confidence that an edited focus map gives: the one rule every retouch
    (the library, ``stackmff regather``, the halo limiter, the napari widget) follows.

    Args:
        layers: ``(L, H, W[, C])`` the stack, as the method saw it (not checked here).
        focus_map: ``(H, W)`` the edited layer indices.
        decided: ``(H, W)`` bool, where the edit chose the layer: the confidence there becomes
            0. ``None`` only without ``confidence`` and ``fused`` (nothing to carry over).
        confidence: ``(H, W)`` the method's confidence, or ``None``.
        fused: the image before the edit, kept where nothing was decided (a blend's pixels
            stay as the method made them); ``None``: every pixel is gathered from the map.

    Returns:
        ``(fused, confidence)``: new arrays; the inputs are not changed.
    """
    gathered = gather(layers, focus_map)
    if fused is None:
        fused = gathered
    else:
        fused = fused.copy()
        fused[decided] = gathered[decided]
    if confidence is not None:
        confidence = confidence.copy()
        confidence[decided] = 0.0
    return fused, confidence


@dataclass(frozen=True)
class Retouch:
    """A stack, its focus map, its confidence, and the fused image they make, kept consistent.

    Every edit returns a new ``Retouch`` whose fused image is the gather of its edited map, and
    whose confidence is 0 where a person decided: the whole painted mask, and the pixels whose
    layer ``prefer`` changed.

    Attributes:
        layers: ``(L, H, W[, 3])`` float32, the stack.
        focus_map: ``(H, W)`` integer layer indices.
        confidence: ``(H, W)`` float32 in [0, 1], or ``None`` where the method had none.
        fused: ``(H, W[, 3])`` float32, always ``regather(layers, focus_map)``.
    """

    layers: np.ndarray
    focus_map: np.ndarray
    confidence: np.ndarray | None
    fused: np.ndarray

    @classmethod
    def start(cls, stack: Stack | np.ndarray, focus_map: np.ndarray,
              confidence: np.ndarray | None = None) -> Retouch:
        """Begin retouching from a stack and a focus map (and, if known, the confidence).

        Raises:
            StackError: shapes that disagree, or a map naming a layer the stack lacks.
        """
        layers = _layers_of(stack)
        focus_map = check_focus_map(focus_map, len(layers), layers.shape[1:3]).copy()
        if confidence is not None:
            confidence = check_confidence(confidence, focus_map.shape).copy()
        return cls(layers, focus_map, confidence, gather(layers, focus_map))

    @classmethod
    def from_result(cls, stack: Stack | np.ndarray, result: FusionResult) -> Retouch:
        """Begin retouching a fusion result. The fused image becomes the exact gather of the
        result's map, whatever blend made the result.

        Raises:
            StackError: the method made no focus map.
        """
        if result.focus_map is None:
            raise StackError(f"method {result.method!r} produces no focus map to retouch")
        return cls.start(stack, result.focus_map, result.confidence)

    def paint(self, mask: np.ndarray, layer: int) -> Retouch:
        """Take ``layer`` wherever ``mask`` is true; the confidence there becomes 0."""
        focus_map = paint(self.focus_map, mask, layer, len(self.layers))
        return self._edited(focus_map, np.asarray(mask, bool))

    def prefer(self, region: np.ndarray, side: Side = "near", **options) -> Retouch:
        """Inside ``region``, take the nearest (farthest) confident layer: see :func:`prefer`,
        whose keyword options this passes on. The confidence becomes 0 where the layer
        changed."""
        focus_map = prefer(self.focus_map, self.confidence, region, side, **options)
        return self._edited(focus_map, focus_map != self.focus_map)

    def _edited(self, focus_map: np.ndarray, decided: np.ndarray) -> Retouch:
        fused, confidence = regather_edit(self.layers, focus_map, decided, self.confidence)
        return dataclasses.replace(self, focus_map=focus_map, confidence=confidence,
                                   fused=fused)


def _layers_of(stack: Stack | np.ndarray) -> np.ndarray:
    return check_layers(stack.layers if isinstance(stack, Stack) else stack)
