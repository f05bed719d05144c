"""How the network's per-pixel layer probabilities become the fused image.

``hard`` is the paper's fidelity gather: every output pixel is copied from the most probable
layer, so no value is invented (what quantitative microscopy needs). ``soft`` weights the
layers by their probabilities, lightly smoothed (the blend of the authors' ``openfocus``).
``band`` gathers where the network is confident and blends only across focus-map boundaries
and at low-confidence pixels, so almost every pixel stays exact. Probabilities may also be
averaged over input scales (``openfocus`` uses 1.0 and 0.75).

Whatever the mode, the focus map (the most probable layer of the blend's probabilities) and
the confidence (that layer's probability) are defined for every pixel. Everything here works
on one tile's window: smoothing and boundaries see the margin, only the core is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from stackmff.errors import StackError
from stackmff.stack_ops import gather

if TYPE_CHECKING:  # torch is imported where the network runs: the option check needs none
    import torch

BLENDS = ("hard", "soft", "band")
DEFAULT_SIGMA = 0.5          # openfocus's smoothing of the probabilities (pixels)
MAX_SIGMA = 16.0             # 3 sigma must stay well inside the tile margin
BAND_CONFIDENCE = 0.3        # band: pixels less confident than this are blended
BAND_RADIUS = 2              # band: pixels this close to a focus-map boundary are blended

Logits = Callable[[np.ndarray, bool], "torch.Tensor"]   # (luma (N, h, w), full scale) -> [N, h, w]


@dataclass(frozen=True)
class Blend:
    """A blend mode and its settings.

    Attributes:
        mode: ``"hard"``, ``"soft"`` or ``"band"``.
        sigma: Gaussian smoothing (pixels) of the probabilities before they weight the
            layers; ``None``: 0.5 for soft and band, none for hard.
        scales: input scales whose probabilities are averaged (1.0 = full resolution).
        band_confidence, band_radius: what ``band`` blends (see the module docstring).
    """

    mode: str = "hard"
    sigma: float | None = None
    scales: tuple[float, ...] = (1.0,)
    band_confidence: float = BAND_CONFIDENCE
    band_radius: int = BAND_RADIUS

    @property
    def smoothing(self) -> float:
        if self.sigma is not None:
            return float(self.sigma)
        return 0.0 if self.mode == "hard" else DEFAULT_SIGMA

    @property
    def plain_gather(self) -> bool:
        """The paper's gather from one full-scale pass: the network's own argmax."""
        return self.mode == "hard" and self.scales == (1.0,) and self.smoothing == 0.0


def check_blend(blend: str = "hard", blend_sigma: float | None = None,
                blend_scales: tuple[float, ...] | list[float] = (1.0,)) -> Blend:
    """The options as a :class:`Blend`, or a one-line :class:`StackError`."""
    if blend not in BLENDS:
        raise StackError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")
    if blend_sigma is not None and (
            isinstance(blend_sigma, bool) or not isinstance(blend_sigma, (int, float))
            or not 0 <= blend_sigma <= MAX_SIGMA):
        raise StackError(f"blend sigma must be a number from 0 to {MAX_SIGMA:g}, "
                         f"got {blend_sigma!r}")
    scales = tuple(blend_scales) if isinstance(blend_scales, (tuple, list)) else None
    if (not scales or len(set(scales)) != len(scales)
            or any(isinstance(s, bool) or not isinstance(s, (int, float))
                   or not 0.25 <= s <= 1.0 for s in scales)):
        raise StackError("blend scales must be distinct numbers from 0.25 to 1, "
                         f"got {blend_scales!r}")
    return Blend(blend, None if blend_sigma is None else float(blend_sigma),
                 tuple(float(s) for s in scales))


def smooth(probabilities: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian smoothing of ``[N, h, w]`` probabilities (replicated borders),
    renormalised over the layers; it acts on every layer alike, so order does not matter."""
    import torch
    import torch.nn.functional as F

    radius = int(3 * sigma + 0.5)
    if sigma <= 0 or radius == 0:
        return probabilities
    t = torch.arange(-radius, radius + 1, dtype=probabilities.dtype)
    kernel = torch.exp(-t ** 2 / (2 * sigma * sigma))
    kernel = kernel / kernel.sum()
    x = probabilities[:, None]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    x = x[:, 0]
    return x / x.sum(0, keepdim=True)


def scaled_luma(grey: np.ndarray, scale: float) -> np.ndarray:
    """Luma ``(N, h, w)`` resized by ``scale`` (bilinear, antialiased), at least 32 pixels."""
    import torch
    import torch.nn.functional as F

    h, w = grey.shape[1:]
    size = (max(32, round(h * scale)), max(32, round(w * scale)))
    x = torch.from_numpy(np.ascontiguousarray(grey, np.float32))[None]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False,
                         antialias=True)[0].numpy()


def probabilities(blend: Blend, logits: Logits, grey: np.ndarray) -> torch.Tensor:
    """The blend's ``[N, h, w]`` probabilities of one window: the softmax of the network's
    logits, averaged over the scales (each resized back bilinearly), then smoothed."""
    import torch

    with torch.inference_mode():
        return _probabilities(blend, logits, grey)


def _probabilities(blend: Blend, logits: Logits, grey: np.ndarray) -> torch.Tensor:
    import torch.nn.functional as F

    h, w = grey.shape[1:]
    total = None
    for scale in blend.scales:
        if scale == 1.0:
            p = logits(grey, True).float().softmax(0).cpu()
        else:
            small = logits(scaled_luma(grey, scale), False).float().softmax(0).cpu()
            p = F.interpolate(small[None], size=(h, w), mode="bilinear",
                              align_corners=False)[0]
        total = p if total is None else total.add_(p)
        del p
    if len(blend.scales) > 1:
        total /= len(blend.scales)
    return smooth(total, blend.smoothing)


def winner(p: torch.Tensor, depth_head: bool) -> torch.Tensor:
    """Most probable layer per pixel; for the depth-regression head (V3*) the layer nearest
    the expected depth."""
    import torch

    if not depth_head:
        return p.argmax(0)
    n = p.shape[0]
    positions = torch.linspace(0, 1, n, dtype=p.dtype)
    return torch.round(torch.einsum("nhw,n->hw", p, positions) * (n - 1)).long()


def peak_position(p: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
    """The expected layer of the probabilities ``p`` (``[N, h, w]``) over the best layer and
    its two neighbours: the focus position refined below one layer
    (``FusionResult.depth``)."""
    n = p.shape[0]
    below = p.gather(0, (best - 1).clamp(min=0)[None])[0] * (best > 0)
    above = p.gather(0, (best + 1).clamp(max=n - 1)[None])[0] * (best < n - 1)
    centre = p.gather(0, best[None])[0]
    total = (below + centre + above).clamp(min=1e-12)
    return best.to(p.dtype) + (above - below) / total


def weighted_mean(p: np.ndarray, layers: np.ndarray, mask: np.ndarray | None = None,
                  out: np.ndarray | None = None) -> np.ndarray:
    """``sum_k p[k] * layers[k]`` over the pixels of ``mask`` (all if ``None``), one layer at a
    time, so no float copy of the stack is made."""
    colour = layers.ndim == 4
    if mask is None:
        acc = np.zeros(layers.shape[1:], np.float32)
        for k in range(layers.shape[0]):
            acc += (p[k][..., None] if colour else p[k]) * layers[k]
        return acc
    acc = np.zeros((int(mask.sum()), *layers.shape[3:]), np.float32)
    for k in range(layers.shape[0]):
        weights = p[k][mask]
        acc += (weights[:, None] if colour else weights) * layers[k][mask]
    out[mask] = acc
    return out


def band_mask(focus_map: np.ndarray, confidence: np.ndarray, blend: Blend) -> np.ndarray:
    """Pixels ``band`` blends: within ``band_radius`` of a focus-map boundary, or less
    confident than ``band_confidence``."""
    edge = np.zeros(focus_map.shape, bool)
    vertical = focus_map[1:] != focus_map[:-1]
    horizontal = focus_map[:, 1:] != focus_map[:, :-1]
    edge[1:] |= vertical
    edge[:-1] |= vertical
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    if blend.band_radius > 1 and edge.any():
        size = 2 * blend.band_radius - 1
        from scipy.ndimage import binary_dilation  # only here: listing methods needs no SciPy

        edge = binary_dilation(edge, np.ones((size, size), bool))
    return edge | (confidence < blend.band_confidence)


@dataclass
class TileDecision:
    """One tile core's focus map, confidence, and (soft, band) fused pixels."""

    focus_map: np.ndarray
    confidence: np.ndarray
    fused: np.ndarray | None
    depth: np.ndarray | None = None


def decide_tile(blend: Blend, logits: Logits, grey: np.ndarray, layers: np.ndarray,
                core: tuple[slice, slice], depth_head: bool) -> TileDecision:
    """Focus map, confidence and fused pixels of one tile's core, from its window's luma
    ``grey`` and colour ``layers`` (``(N, h, w[, 3])``)."""
    p = probabilities(blend, logits, grey)
    best = winner(p, depth_head)
    confidence = p.gather(0, best[None])[0].numpy()
    rows, cols = core
    depth = peak_position(p, best).float().numpy()[rows, cols]
    focus_map = best.numpy()
    del best
    if blend.mode == "hard":
        return TileDecision(focus_map[rows, cols], confidence[rows, cols], None, depth)
    p = p.numpy()
    core_p, core_layers = p[:, rows, cols], layers[:, rows, cols]
    if blend.mode == "soft":
        fused = weighted_mean(core_p, core_layers)
    else:
        mask = band_mask(focus_map, confidence, blend)[rows, cols]
        fused = gather(core_layers, focus_map[rows, cols])
        if mask.any():
            weighted_mean(core_p, core_layers, mask, fused)
    return TileDecision(focus_map[rows, cols], confidence[rows, cols], fused, depth)


def exact_fraction(fused: np.ndarray, layers: np.ndarray, focus_map: np.ndarray) -> float:
    """Share of pixels equal to the gather by the focus map (1.0 for ``hard``)."""
    same = fused == gather(layers, focus_map)
    return float((same.all(axis=-1) if same.ndim == 3 else same).mean())


__all__ = ["BLENDS", "Blend", "check_blend", "decide_tile", "exact_fraction"]
