"""Inference-only rewrites of the network that leave its function unchanged.

BatchNorm folded into the preceding convolution (one pass over memory fewer per conv); the
learnable pools (one kernel shared by all channels, then BatchNorm) become ordinary depthwise
convolutions with the BatchNorm folded in; GELUs that work in place; and the channels-last memory layout that oneDNN's
convolutions run fastest in (measured on a 2-core AVX-512 CPU, one 1024x1024 layer: 0.98 s
plain, 0.65 s folded + channels-last).
"""

from __future__ import annotations

import copy
import os

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from stackmff.model.blocks import ChannelMLP, LearnablePool, PyramidFC


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


class OneDNNConv(nn.Module):
    """A convolution (its GELU fused in, if any) called through oneDNN directly.

    Why: with one intra-op thread per worker, PyTorch sends 1x1 convolutions of one image
    to its own im2col path ("THNN is faster single-threaded"), which fills the output with
    the bias in a pass of its own and ran the network's 1x1 convolutions at a third of
    oneDNN's speed; a GELU after a convolution is one more pass over the widest maps, which
    oneDNN applies as the output is written."""

    def __init__(self, conv: nn.Conv2d, gelu: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(conv.weight.detach().contiguous(
            memory_format=torch.channels_last), requires_grad=False)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach(),
                                                                requires_grad=False)
        self.padding, self.stride = list(conv.padding), list(conv.stride)
        self.dilation, self.groups = list(conv.dilation), conv.groups
        self.attr = "gelu" if gelu else "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._convolution_pointwise(
            x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups,
            self.attr, [], "none")


class BandedChannelMLP(nn.Module):
    """A downsampling channel MLP (1x1 expansion and GELU, strided depthwise 3x3, 1x1
    projection) run band by band of output rows, so its widest map (the expansion, six
    times the input's channels at the input's resolution: 100 MB for the first block of a
    1024 x 1024 layer) is never whole; each band's expansion reads the one input row above
    it that the 3x3 needs. The same sums per output as the whole map."""

    def __init__(self, mlp: ChannelMLP, rows: int = 32) -> None:
        super().__init__()
        self.expand, self.activation, self.project = mlp.expand, mlp.activation, mlp.project
        spatial = mlp.spatial[0] if isinstance(mlp.spatial, nn.Sequential) else mlp.spatial
        self.spatial = copy.copy(spatial)
        self.spatial.padding = [0, spatial.padding[1]]  # rows: padded band by band below
        self.rows = rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height = x.shape[-2]
        out_height = (height - 1) // 2 + 1
        bands = []
        for r0 in range(0, out_height, self.rows):
            r1 = min(r0 + self.rows, out_height)
            top, bottom = 2 * r0 - 1, 2 * r1  # the input rows output rows r0..r1-1 read
            hidden = self.activation(self.expand(x[:, :, max(top, 0):min(bottom, height)]))
            if top < 0 or bottom > height:  # the image's own border: zeros, as the conv pads
                hidden = F.pad(hidden, (0, 0, max(-top, 0), max(bottom - height, 0)))
            bands.append(self.spatial(hidden))
        return self.project(torch.cat(bands, dim=2) if len(bands) > 1 else bands[0])


def band_downsampling_mlps(module: nn.Module) -> None:
    """Every downsampling :class:`ChannelMLP` below ``module`` (after
    :func:`convolutions_through_onednn`) as a :class:`BandedChannelMLP`, in place."""
    for name, child in module.named_children():
        spatial = getattr(child, "spatial", None)
        if isinstance(spatial, nn.Sequential):
            spatial = spatial[0]
        if (isinstance(child, ChannelMLP) and isinstance(spatial, OneDNNConv)
                and spatial.stride == [2, 2] and spatial.padding == [1, 1]):
            setattr(module, name, BandedChannelMLP(child))
        else:
            band_downsampling_mlps(child)


def native_upsampling(module: nn.Module) -> None:
    """Every :class:`PyramidFC` below ``module`` adds its coarse branches through the C
    kernel (:mod:`stackmff.runtime.native_upsample`; the same sums), in place."""
    from stackmff.runtime.native_upsample import add_nearest_upsampled_native_

    for child in module.modules():
        if isinstance(child, PyramidFC):
            child.add_upsampled = add_nearest_upsampled_native_


def onednn_available() -> bool:
    return (torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))


def convolutions_through_onednn(module: nn.Module) -> None:
    """Every convolution below ``module`` as a :class:`OneDNNConv`, each followed by a GELU
    (``Sequential(conv, Identity, GELU)``, a channel MLP's expansion) with it fused in; in
    place, after the BatchNorms are folded."""
    for name, child in module.named_children():
        if (isinstance(child, nn.Sequential) and len(child) == 3
                and isinstance(child[0], nn.Conv2d) and isinstance(child[1], nn.Identity)
                and isinstance(child[2], GELUInPlace)):
            setattr(module, name, OneDNNConv(child[0], gelu=True))
        elif isinstance(child, nn.Conv2d) and child.padding_mode == "zeros":
            setattr(module, name, OneDNNConv(child))
        else:
            convolutions_through_onednn(child)
    if isinstance(module, ChannelMLP) and isinstance(module.activation, GELUInPlace):
        module.expand.attr, module.activation = "gelu", nn.Identity()


def convolution_layout(device: str | torch.device) -> torch.memory_format:
    """The memory layout the convolutions run in: channels-last on CPU, where oneDNN runs
    fastest in it; the default layout on CUDA, where cuDNN looks for (and in bf16 builds) a
    channels-last kernel anew for every input shape: a training step at a stack size not
    seen before took 7 s (fp32) or 15-20 s (bf16) on an H200, 0.5 s in the default layout."""
    return torch.channels_last if torch.device(device).type == "cpu" else torch.contiguous_format


def optimise_for_inference(model: nn.Module, device: str, in_place: bool = False,
                           onednn: bool = True) -> nn.Module:
    """An eval-mode copy of ``model`` (``in_place``: the model itself, for a caller that
    gives it up) with folded BatchNorms and pools, in the device's convolution layout; on a
    CPU with ``onednn`` (fp32 runs: autocast does not reach the direct calls) its
    convolutions as :class:`OneDNNConv` and its downsampling channel MLPs banded
    (``STACKMFF_ONEDNN=0``: neither); on a CPU the pyramid-FCs' coarse branches added by the
    C kernel where it builds (``STACKMFF_NATIVE=0``: not)."""
    fast = (model if in_place else copy.deepcopy(model)).eval()
    fold_batch_norms(fast)
    fold_learnable_pools(fast)
    gelus_in_place(fast)
    fast = fast.to(device).to(memory_format=convolution_layout(device))
    if torch.device(device).type == "cpu":
        native_upsampling(fast)
    if (onednn and torch.device(device).type == "cpu" and onednn_available()
            and os.environ.get("STACKMFF_ONEDNN", "1") != "0"):
        convolutions_through_onednn(fast)
        band_downsampling_mlps(fast)
    return fast
