"""The straightforward implementation of the cross-layer attention, as the authors run it.

The volume is permuted to ``(b h w) l c`` token sequences and the whole image goes through
``nn.MultiheadAttention`` at once. It shares its weights with :class:`CrossLayerAttention`
and exists to check and to measure the fast path (tests, ``benchmarks/network_speed.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stackmff.model.attention import CrossLayerAttention, apply_rotary, rotary_tables
from stackmff.model.network import StackMFFV3, StackOutput


def reference_attention(module: CrossLayerAttention, volume: torch.Tensor) -> torch.Tensor:
    """``[B, N, C, H, W] -> [B, N, C, H, W]`` with standard PyTorch layers, whole image."""
    b, n, c, h, w = volume.shape
    x = volume.permute(0, 3, 4, 1, 2).reshape(b * h * w, n, c)
    tables = rotary_tables(n, c, module.config.rope_base, x.device, x.dtype)
    for layer in module.layers:
        if module.config.pos_encoding == "rope":
            x = apply_rotary(x, *tables)
        mixed, _ = layer.self_attn(x, x, x)  # need_weights=True, as in the authors' code
        x = layer.norm1(x + mixed)
        x = layer.norm2(x + layer.linear2(F.gelu(layer.linear1(x))))
    return x.reshape(b, h, w, n, c).permute(0, 3, 4, 1, 2)


class ReferenceStackMFFV3(nn.Module):
    """The same network run the straightforward way: every layer and pixel in one pass."""

    def __init__(self, model: StackMFFV3) -> None:
        super().__init__()
        self.model = model

    def forward(self, stack: torch.Tensor) -> StackOutput:
        volume = self.model.estimate(stack)
        return StackOutput(self.model.reduce(reference_attention(self.model.attention, volume)))
