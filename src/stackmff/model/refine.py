"""A full-resolution refinement head on top of the frozen V3 network (method ``v3+``).

V3 decides at 1/4 resolution and upsamples, so its per-layer logits are a strong but coarse
prior: thin structures come out ragged. Classical focus measures are sharp at full resolution
but noisy. The head takes, per layer and pixel, V3's log-probability, two energy-of-Laplacian
measures (each relative to the sharpest layer at that pixel) and the layer's luma relative to
the mean over layers, and adds a correction to the log-probability. Its weights are shared by
the layers and the only exchange between layers is a maximum over them, so the head is exactly
permutation-equivariant and works for any N; softmax over the layers gives the blend weights,
the argmax the focus map.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

FLOOR = -16.0          # log-probabilities and relative measures are clipped here
EPSILON = 1e-5         # added to the Laplacian energies before the log (grey in [0, 1])
LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])

# Every size a head config sets, bounded (kind, least, largest) so that a config cannot ask for
# more memory than a machine has before anything is checked. The shipped head and the training
# configs use width 12, dilated 1 and sigmas 1 and 2.5: the caps are 4 to 6 times those. Width
# sets the weights and the per-layer maps (about 5 x width floats per layer and pixel: 1.4 GB
# strips at the cap), dilated the layers and their reach (2**dilated rows), a sigma its
# Gaussian's taps (6 x sigma + 1). Below 0.1 a sigma blurs nothing more; far below, its kernel
# underflows to NaN.
HEAD_LIMITS = {
    "width": (int, 1, 64),
    "fine_sigma": (float, 0.1, 16.0),
    "coarse_sigma": (float, 0.1, 16.0),
    "dilated": (int, 0, 6),
}


@dataclass(frozen=True)
class HeadConfig:
    """``width``: hidden channels; ``fine_sigma``/``coarse_sigma``: Gaussian windows (px)
    of the two focus measures (the coarse one on luma pre-blurred by sigma 1); ``dilated``:
    extra 3x3 layers with dilation 2, 4, ... (each widens the head's reach)."""

    width: int = 12
    fine_sigma: float = 1.0
    coarse_sigma: float = 2.5
    dilated: int = 0

    def __post_init__(self) -> None:
        for key in ("fine_sigma", "coarse_sigma"):  # whole numbers (from TOML) become floats
            value = getattr(self, key)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, key, float(value))
        self.validate()

    def validate(self) -> None:
        """Check every value's type and range, so that a bad config (a file's, a training
        config's) is refused by name before any weight or map is allocated.

        Raises:
            ValueError: naming the value and its allowed range.
        """
        for key, (kind, low, high) in HEAD_LIMITS.items():
            value = getattr(self, key)
            fits = (isinstance(value, kind) and not isinstance(value, bool)
                    and math.isfinite(value) and low <= value <= high)
            if not fits:
                noun = "a whole number" if kind is int else "a number"
                raise ValueError(f"{key} must be {noun} in {low:g}..{high:g}, "
                                 f"got {_shown(value)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> HeadConfig:
        """A config from plain data (a head file's ``model_config``, a TOML table).

        Raises:
            ValueError: ``values`` is not a mapping, names an unknown key, or holds a value
                of the wrong type or range.
        """
        if not isinstance(values, dict):
            raise ValueError(f"a head config must be a table of names and values, "
                             f"got {type(values).__name__}")
        unknown = sorted(str(k) for k in values if k not in cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown head option(s): {', '.join(unknown)}; "
                             f"the options are {', '.join(HEAD_LIMITS)}")
        return cls(**values)


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _radius(sigma: float) -> int:
    return max(1, int(3 * sigma + 0.5))


def _gaussian(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[N, 1, H, W]`` with reflected borders."""
    radius = _radius(sigma)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-t ** 2 / (2 * sigma * sigma))
    kernel = kernel / kernel.sum()
    mode = "reflect" if min(x.shape[-2:]) > radius else "replicate"
    x = _per_layer(F.pad(x, (radius, radius, 0, 0), mode=mode), kernel.view(1, 1, 1, -1))
    return _per_layer(F.pad(x, (0, 0, radius, radius), mode=mode), kernel.view(1, 1, -1, 1))


def _per_layer(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``conv2d(x, kernel)`` for ``[N, 1, H, W]``: the layers as the channels of one
    depthwise convolution, which CPUs run several times faster than N one-channel images."""
    n = x.shape[0]
    out = F.conv2d(x.view(1, n, *x.shape[-2:]), kernel.expand(n, 1, *kernel.shape[-2:]), groups=n)
    return out.view(n, 1, *out.shape[-2:])


def _log_energy(grey: torch.Tensor, sigma: float) -> torch.Tensor:
    lap = _per_layer(F.pad(grey, (1, 1, 1, 1), mode="replicate"),
                     LAPLACIAN.to(grey).view(1, 1, 3, 3))
    return torch.log(_gaussian(lap * lap, sigma) + EPSILON)


def _relative(x: torch.Tensor) -> torch.Tensor:
    """``x`` minus its maximum over the layers (dim 0), clipped at FLOOR."""
    return (x - x.amax(dim=0, keepdim=True)).clamp_min(FLOOR)


def features(logits: torch.Tensor, grey: torch.Tensor, config: HeadConfig) -> torch.Tensor:
    """``[N, 4, H, W]`` per-layer inputs from V3's logits ``[N, H, W]`` and luma ``[N, H, W]``:
    log-probability, fine and coarse focus measure (relative to the best layer), luma minus
    the mean over layers."""
    g = grey[:, None].float()
    fine = _relative(_log_energy(g, config.fine_sigma))
    coarse = _relative(_log_energy(_gaussian(g, 1.0), config.coarse_sigma))
    log_p = logits.float().log_softmax(dim=0)[:, None].clamp_min(FLOOR)
    return torch.cat([log_p, fine, coarse, g - g.mean(dim=0, keepdim=True)], dim=1)


class RefineHead(nn.Module):
    """Per-layer convolutions with a max over layers between them; refined logits ``[N, H, W]``
    = V3's log-probability (scaled) + a learned correction (zero at initialisation)."""

    def __init__(self, config: HeadConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or HeadConfig()
        width = config.width
        self.first = nn.Conv2d(4, width, 3, padding=1, padding_mode="replicate")
        self.mix = nn.Conv2d(2 * width, width, 3, padding=1, padding_mode="replicate")
        self.wide = nn.ModuleList(
            nn.Conv2d(2 * width, width, 3, padding=2 ** (i + 1), dilation=2 ** (i + 1),
                      padding_mode="replicate") for i in range(config.dilated))
        self.out = nn.Conv2d(2 * width, 1, 1)
        self.log_scale = nn.Parameter(torch.zeros(()))
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def reach(self) -> int:
        """Rows (and columns) of context one output pixel depends on: the focus measures'
        Laplacian and Gaussian windows, then the 3x3 convolutions. A part of the image
        computed with this much more around it is computed as in the whole."""
        return self.feature_reach() + self.convolution_reach()

    def feature_reach(self) -> int:
        """The part of :meth:`reach` that :func:`features` needs: the focus measures'
        Laplacian and Gaussian windows."""
        config = self.config
        fine = 1 + _radius(config.fine_sigma)
        coarse = _radius(1.0) + 1 + _radius(config.coarse_sigma)
        return max(fine, coarse)

    def convolution_reach(self) -> int:
        """The part of :meth:`reach` that the 3x3 convolutions need."""
        return 2 + sum(2 ** (i + 1) for i in range(self.config.dilated))

    @staticmethod
    def _with_max(h: torch.Tensor) -> torch.Tensor:
        return torch.cat([h, h.amax(dim=0, keepdim=True).expand_as(h)], dim=1)

    def forward(self, logits: torch.Tensor, grey: torch.Tensor) -> torch.Tensor:
        """Refined logits ``[N, H, W]`` for one stack: V3 logits and luma, both ``[N, H, W]``."""
        if logits.shape != grey.shape or logits.ndim != 3:
            raise ValueError(f"logits and luma must both be [N, H, W], got "
                             f"{tuple(logits.shape)} and {tuple(grey.shape)}")
        return self.from_features(features(logits, grey, self.config))

    def from_features(self, x: torch.Tensor) -> torch.Tensor:
        """Refined logits ``[N, H, W]`` from :func:`features` (training computes them once
        per stack)."""
        h = F.gelu(self.first(x))
        h = F.gelu(self.mix(self._with_max(h)))
        for layer in self.wide:
            h = h + F.gelu(layer(self._with_max(h)))
        correction = self.out(self._with_max(h))[:, 0]
        return x[:, 0] * self.log_scale.exp() + correction


__all__ = ["HEAD_LIMITS", "HeadConfig", "RefineHead", "features"]
