"""Building blocks of the PFMLP encoder (StackMFF V3, section "intra-layer focus estimation").

A bottleneck block mixes tokens with a *pyramid FC* (four parallel poolings at growing
receptive fields, each lifted by a 1x1 conv and summed) and channels with an MLP; both are
residual with stochastic depth.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stackmff.model.global_means import global_average


class LearnablePool(nn.Module):
    """One k x k kernel shared by all channels, applied depthwise, then BatchNorm."""

    def __init__(self, channels: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.channels, self.kernel, self.stride = channels, kernel, stride
        self.weight = nn.Parameter(torch.full((1, 1, kernel, kernel), 1.0 / kernel**2))
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.expand(self.channels, 1, self.kernel, self.kernel)
        x = F.conv2d(x, weight, stride=self.stride, padding=self.kernel // 2, groups=self.channels)
        return self.norm(x)


def conv_bn(in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1,
            groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups,
                  bias=False),
        nn.BatchNorm2d(out_channels),
    )


class PyramidFC(nn.Module):
    """Token mixing: pooled branches (k=3/s1, k=5/s2, k=7/s3, global) lifted, summed, projected."""

    BRANCHES = ((3, 1), (5, 2), (7, 3))

    def __init__(self, channels: int, ratio: int) -> None:
        super().__init__()
        hidden = channels * ratio
        self.pools = nn.ModuleList(LearnablePool(channels, k, s) for k, s in self.BRANCHES)
        self.lifts = nn.ModuleList(conv_bn(channels, hidden) for _ in range(len(self.BRANCHES) + 1))
        self.project = conv_bn(hidden, channels)
        self.activation = nn.GELU()
        # how a coarse branch is added: inference may swap in a faster one with the same sums
        self.add_upsampled = add_nearest_upsampled_

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (pool, lift), *coarser = zip(self.pools, self.lifts)
        total = lift(pool(x))  # stride 1: full size; the coarser branches are added in place
        for pool, lift in coarser:
            self.add_upsampled(total, lift(pool(x)))
        total += self.lifts[-1](global_average(x))  # global branch, broadcast
        return self.project(self.activation(total))


def add_nearest_upsampled_(total: torch.Tensor, branch: torch.Tensor) -> None:
    """``total += interpolate(branch, total's size, "nearest")``; at exactly twice the size
    without the upsampled copy (a broadcast into a strided view of ``total``)."""
    (b, c, height, width), (h, w) = total.shape, branch.shape[-2:]
    if (height, width) == (2 * h, 2 * w):
        total.view(b, c, h, 2, w, 2).add_(branch[:, :, :, None, :, None])
    else:
        total.add_(F.interpolate(branch, size=(height, width), mode="nearest"))


class ChannelMLP(nn.Module):
    """1x1 expand + GELU, a spatial step (learnable pool, or strided depthwise 3x3), 1x1 project."""

    def __init__(self, in_channels: int, out_channels: int, ratio: int, stride: int) -> None:
        super().__init__()
        hidden = out_channels * ratio
        self.expand = nn.Conv2d(in_channels, hidden, 1)
        self.spatial = (LearnablePool(hidden, 3, 1) if stride == 1
                        else conv_bn(hidden, hidden, 3, stride, groups=hidden))
        self.project = nn.Conv2d(hidden, out_channels, 1)
        self.activation = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.spatial(self.activation(self.expand(x))))


class DropPath(nn.Module):
    """Stochastic depth: drop the residual branch per sample during training."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Bottleneck(nn.Module):
    """Residual pyramid-FC token mixing, then a residual channel MLP (may downsample)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, ratio: int,
                 drop_path: float) -> None:
        super().__init__()
        self.token_mixing = PyramidFC(in_channels, ratio)
        self.channel_mlp = ChannelMLP(in_channels, out_channels, ratio, stride)
        self.drop_path = DropPath(drop_path)
        if stride == 1 and in_channels == out_channels:
            self.skip: nn.Module = nn.Identity()
        else:
            self.skip = nn.Sequential(conv_bn(in_channels, in_channels, 3, stride, in_channels),
                                      conv_bn(in_channels, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.token_mixing(x))
        return self.skip(x) + self.drop_path(self.channel_mlp(x))
