"""Intra-layer focus estimation: PFMLP encoder + UPerNet-style decoder (StackMFF V3, stage 1).

Every layer of the stack goes through this 2-D network on its own (the stack axis is folded
into the batch) and comes out as a sigmoid probability volume with C0 channels at full
resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stackmff.model.blocks import Bottleneck
from stackmff.model.config import ModelConfig
from stackmff.model.global_means import global_average


def conv_bn_gelu(in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.GELU(),
    )


class PFMLPEncoder(nn.Module):
    """Stem (1/2) and four stages of bottleneck blocks (1/4, 1/8, 1/16, 1/32)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.stem = conv_bn_gelu(1, config.stem_width, 3, 2)
        n_blocks = len(config.widths) * config.blocks_per_stage
        rates = torch.linspace(0, config.drop_path, n_blocks).tolist()
        self.stages = nn.ModuleList()
        channels = config.stem_width
        for s, width in enumerate(config.widths):
            blocks = []
            for b in range(config.blocks_per_stage):
                rate = rates[s * config.blocks_per_stage + b]
                blocks.append(Bottleneck(channels, width, 2 if b == 0 else 1, config.mlp_ratio, rate))
                channels = width
            self.stages.append(nn.Sequential(*blocks))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class PyramidPooling(nn.Module):
    """PSP module on the deepest map: pooled context at several scales, fused to C0."""

    def __init__(self, in_channels: int, width: int, bins: tuple[int, ...], out_channels: int) -> None:
        super().__init__()
        self.bins = bins
        self.branches = nn.ModuleList(conv_bn_gelu(in_channels, width) for _ in bins)
        self.fuse = conv_bn_gelu(in_channels + width * len(bins), out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [F.interpolate(branch(global_average(x) if b == 1 else F.adaptive_avg_pool2d(x, b)),
                                size=size, mode="bilinear", align_corners=False)
                  for b, branch in zip(self.bins, self.branches)]
        return self.fuse(torch.cat([x] + pooled, dim=1))


class UPerDecoder(nn.Module):
    """FPN over the encoder maps with the PSP top, fused at 1/4, upsampled to the input."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        width = config.decoder_width
        self.ppm = PyramidPooling(config.widths[-1], config.ppm_width, config.ppm_bins, width)
        self.laterals = nn.ModuleList(conv_bn_gelu(c, width) for c in config.widths[:-1])
        self.smooth = nn.ModuleList(conv_bn_gelu(width, width, 3) for _ in config.widths[:-1])
        self.fuse = conv_bn_gelu(width * len(config.widths), width)
        self.head = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, features: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        return self.full_resolution(self.quarter(features), size)

    def quarter(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Everything before the upsampling: the fused map at 1/4 resolution."""
        levels = [lateral(f) for lateral, f in zip(self.laterals, features[:-1])]
        levels.append(self.ppm(features[-1]))
        for i in range(len(levels) - 1, 0, -1):
            levels[i - 1] = levels[i - 1] + F.interpolate(
                levels[i], size=levels[i - 1].shape[-2:], mode="bilinear", align_corners=False)
        quarter = levels[0].shape[-2:]
        outputs = [smooth(level) for smooth, level in zip(self.smooth, levels[:-1])] + [levels[-1]]
        outputs = [outputs[0]] + [F.interpolate(o, size=quarter, mode="bilinear", align_corners=False)
                                  for o in outputs[1:]]
        return self.fuse(torch.cat(outputs, dim=1))

    def full_resolution(self, quarter: torch.Tensor, size: tuple[int, int],
                        rows: tuple[int, int] | None = None) -> torch.Tensor:
        """The fused map upsampled to ``size``, the head and the sigmoid; with ``rows = (r0,
        r1)`` only those full-resolution rows, from the few quarter rows they need, so that
        the full-resolution volume need never be whole. Where ``size`` is exactly four times
        the quarter map (the network's input is padded to multiples of 32), the rows equal
        those of the whole map bit for bit: at a scale of exactly 4 the bilinear weights of a
        row do not depend on where the upsampled part starts."""
        if rows is None:
            x = F.interpolate(quarter, size=size, mode="bilinear", align_corners=False)
            x = self.head(x)  # the upsampled map is freed here, and the sigmoid works in place:
            return x.sigmoid_()  # two full-resolution maps at a time instead of three
        height, q = size[0], quarter.shape[-2]
        if height != 4 * q or size[1] != 4 * quarter.shape[-1]:
            raise ValueError(f"rows of the head need a size 4x the quarter map's, got {size}")
        r0, r1 = rows
        u0, u1 = max(r0 - 1, 0), min(r1 + 1, height)  # the head's 3x3 reads a row either side
        # upsampled row y interpolates quarter rows floor(y/4 - 3/8) and the one after
        q0, q1 = max((u0 - 2) // 4, 0), min((u1 - 1) // 4 + 2, q)
        layout = (torch.channels_last if quarter.is_contiguous(memory_format=torch.channels_last)
                  else torch.contiguous_format)  # a strided view takes another, inexact kernel
        part = quarter[:, :, q0:q1].contiguous(memory_format=layout)
        x = F.interpolate(part, size=(4 * (q1 - q0), size[1]), mode="bilinear",
                          align_corners=False)[:, :, u0 - 4 * q0:u1 - 4 * q0]
        x = self.head(x)[:, :, r0 - u0:r1 - u0]
        return x.sigmoid_()


class FocusEstimator(nn.Module):
    """One layer in, a C0-channel focus probability map out (same height and width)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.encoder = PFMLPEncoder(config)
        self.decoder = UPerDecoder(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x), x.shape[-2:])

    def quarter(self, x: torch.Tensor) -> torch.Tensor:
        """The network up to its 1/4-resolution fused map (finished by
        ``decoder.full_resolution``)."""
        return self.decoder.quarter(self.encoder(x))

    def run_global_averages(self, x: torch.Tensor) -> None:
        """Only as much of the network as its global averages need, in the order the forward
        pass runs them: the encoder's, then the PSP's 1x1 bin over the deepest map (for
        :mod:`stackmff.model.global_means`)."""
        deepest = self.encoder(x)[-1]
        if 1 in self.decoder.ppm.bins:
            global_average(deepest)
