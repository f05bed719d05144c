"""Image-wide global averages for tiled inference.

Tiling changes the network's global averages (each tile would average over itself: 0.6% of
focus-map pixels change at 512 px tiles). Tiled inference can therefore go twice over the
tiles: first a :class:`MeanRecorder` sums each global branch's input over the tile's core,
then a :class:`MeanReplay` hands every tile the image's means (through the hook of
:mod:`stackmff.model.global_means`).
"""

from __future__ import annotations

from threading import Lock

import torch
import torch.nn.functional as F


class ImageMeans:
    """Per global-average site (in call order) and per stack layer: the running sum of the
    site's input over the tile cores seen so far, and the pixel count."""

    def __init__(self, n_layers: int) -> None:
        self.n_layers = n_layers
        self.sums: list[torch.Tensor] = []
        self.counts: list[int] = []
        self.lock = Lock()   # worker threads record different layers of the same sites

    def recorder(self, start: int, core: tuple[int, int, int, int], size: tuple[int, int]) -> MeanRecorder:
        """For layers ``start, start + 1, ...`` of one tile: ``core`` = (y0, y1, x0, x1) of the
        tile's core within the ``size`` = (height, width) fed to the network."""
        return MeanRecorder(self, start, core, size)

    def replay(self, start: int) -> MeanReplay:
        """The image means, for layers ``start, start + 1, ...``."""
        return MeanReplay([s / c for s, c in zip(self.sums, self.counts)], start)


class MeanRecorder:
    """Adds each global-average input's core sum to an :class:`ImageMeans`; the network itself
    goes on with the tile's own mean."""

    def __init__(self, means: ImageMeans, start: int, core: tuple[int, int, int, int],
                 size: tuple[int, int]) -> None:
        self.means, self.start, self.core, self.size = means, start, core, size
        self.site = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        (h, w), (y0, y1, x0, x1) = x.shape[-2:], self.core
        sy, sx = self.size[0] / h, self.size[1] / w   # the map's stride
        r0, c0 = round(y0 / sy), round(x0 / sx)
        r1, c1 = max(r0 + 1, round(y1 / sy)), max(c0 + 1, round(x1 / sx))
        total = x[..., r0:r1, c0:c1].sum(dim=(-2, -1), dtype=torch.float32)     # [B, C]
        means = self.means
        with means.lock:
            if self.site == len(means.sums):
                means.sums.append(torch.zeros((means.n_layers, x.shape[1]), device=x.device))
                means.counts.append(0)
            means.sums[self.site][self.start:self.start + x.shape[0]] += total
            if self.start == 0:   # every layer covers the same pixels: count them once
                means.counts[self.site] += (r1 - r0) * (c1 - c0)
        self.site += 1
        return F.adaptive_avg_pool2d(x, 1)


class MeanReplay:
    """Answers the global averages, in call order, with the recorded image means."""

    def __init__(self, means: list[torch.Tensor], start: int) -> None:
        self.means, self.start, self.site = means, start, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.means[self.site][self.start:self.start + x.shape[0]]
        self.site += 1
        return mean.to(x.dtype)[:, :, None, None]
