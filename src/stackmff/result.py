"""The results of a fusion: of one stack (every method returns one), and of a microscopy
array with named axes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from stackmff.microscopy.axes import Metadata


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
        depth: ``(H, W)`` float32, the focus position in layers refined below one layer
            around the method's best layer (``depthmap``: a Gaussian through the focus
            measures of that layer and its two neighbours; the network: the expected layer of
            the probabilities there), or ``None``. It is a measurement, not a choice: where
            the focus map was smoothed or edited away from it, the map's layer counts (see
            :mod:`stackmff.surface`).
    """

    fused: np.ndarray
    focus_map: np.ndarray | None = None
    confidence: np.ndarray | None = None
    method: str = ""
    depth: np.ndarray | None = None


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
        depth: ``(T, Y, X)`` float32 sub-layer focus positions (see
            :attr:`FusionResult.depth`) for an array of one time point, else ``None``.
    """

    fused: Any
    focus_map: np.ndarray
    confidence: np.ndarray | None
    heights: np.ndarray
    metadata: Metadata
    method: str
    heights_in_um: bool = True
    axes: str = "TCYX"
    depth: np.ndarray | None = None
