"""Inference-only rewrites of the network that leave its function unchanged.

BatchNorm folded into the preceding convolution (one pass over memory fewer per conv); the
learnable pools (one kernel shared by all channels, then BatchNorm) become ordinary depthwise
convolutions with the BatchNorm folded in; GELUs that work in place; and the channels-last memory layout that oneDNN's
convolutions run fastest in (measured on a 2-core AVX-512 CPU, one 1024x1024 layer: 0.98 s
plain, 0.65 s folded + channels-last).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from stackmff.model.blocks import LearnablePool


def fold_batch_norms(module: nn.Module) -> None:
    """Replace every ``Sequential(Conv2d, BatchNorm2d, ...)`` pair by one folded conv, in place."""
    for child in module.children():
        if (isinstance(child, nn.Sequential) and len(child) >= 2
                and isinstance(child[0], nn.Conv2d) and isinstance(child[1], nn.BatchNorm2d)):
            child[0] = fuse_conv_bn_eval(child[0], child[1])
            child[1] = nn.Identity()
        else:
            fold_batch_norms(child)


def pool_as_depthwise_conv(pool: LearnablePool) -> nn.Conv2d:
    """The learnable pool and its BatchNorm as one depthwise convolution with bias."""
    c, k = pool.channels, pool.kernel
    conv = nn.Conv2d(c, c, k, pool.stride, k // 2, groups=c, bias=False).eval()
    conv.weight.data.copy_(pool.weight.detach().expand(c, 1, k, k))
    return fuse_conv_bn_eval(conv, pool.norm)


def fold_learnable_pools(module: nn.Module) -> None:
    """Replace every LearnablePool below ``module`` by its depthwise convolution, in place."""
    for name, child in module.named_children():
        if isinstance(child, LearnablePool):
            setattr(module, name, pool_as_depthwise_conv(child))
        else:
            fold_learnable_pools(child)


class GELUInPlace(nn.Module):
    """GELU that overwrites its input: the activations it follows are fresh, so at
    inference they need not be held twice (the widest, 96 channels at half resolution, is
    100 MB for one 1024 x 1024 layer)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten.gelu_(x)


def gelus_in_place(module: nn.Module) -> None:
    """Replace every exact ``nn.GELU`` below ``module`` by :class:`GELUInPlace`, in place."""
    for name, child in module.named_children():
        if isinstance(child, nn.GELU) and child.approximate == "none":
            setattr(module, name, GELUInPlace())
        else:
            gelus_in_place(child)


def convolution_layout(device: str | torch.device) -> torch.memory_format:
    """The memory layout the convolutions run in: channels-last on CPU, where oneDNN runs
    fastest in it; the default layout on CUDA, where cuDNN looks for (and in bf16 builds) a
    channels-last kernel anew for every input shape: a training step at a stack size not
    seen before took 7 s (fp32) or 15-20 s (bf16) on an H200, 0.5 s in the default layout."""
    return torch.channels_last if torch.device(device).type == "cpu" else torch.contiguous_format


def optimise_for_inference(model: nn.Module, device: str, in_place: bool = False) -> nn.Module:
    """An eval-mode copy of ``model`` (``in_place``: the model itself, for a caller that
    gives it up) with folded BatchNorms and pools, in the device's convolution layout."""
    fast = (model if in_place else copy.deepcopy(model)).eval()
    fold_batch_norms(fast)
    fold_learnable_pools(fast)
    gelus_in_place(fast)
    return fast.to(device).to(memory_format=convolution_layout(device))
