"""The result every fusion method returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FusionResult:
    """A fused image and, where the method has them, its per-pixel decisions.

    Attributes:
        fused: ``(H, W[, C])`` float32 in [0, 1]; in the stack's integer type instead where
            a selection method (which copies pixels) fused an integer stack.
        focus_map: ``(H, W)`` integer layer index per pixel. For selection methods
            (``depthmap``, the network's ``hard`` blend) it is the layer the pixel was copied
            from; for the network's ``soft`` and ``band`` blends, the most probable layer; for
            transform methods the layer the fused pixel is closest to. ``None`` if the method
            has none.
        confidence: ``(H, W)`` float32 in [0, 1], the method's certainty in its choice, or
            ``None`` where the method has no such notion.
        method: name of the method that produced it.
    """

    fused: np.ndarray
    focus_map: np.ndarray | None = None
    confidence: np.ndarray | None = None
    method: str = ""
