"""Pixel-wise cross-layer attention (StackMFF V3, stage 2).

Every pixel is an independent sequence of N tokens (one per layer) of width C0. Two post-norm
transformer layers run along the stack axis only. With ``pos_encoding="rope"`` the layer
input itself is rotated by a rotary position embedding of its stack index before each layer
(as in the authors' code, so V and the residual are rotated too); with ``"none"`` the module
is exactly permutation-equivariant over layers.

The computation is laid out for speed: pixels are processed in chunks, the projections are
one large matrix product over all (pixel, layer) tokens, and attention goes through
``scaled_dot_product_attention`` so no attention matrix is kept.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from stackmff.model.config import ModelConfig

# one chunk's attention scores stay within a core's cache (best of 512..8192 measured on
# one core: 2048)
PIXELS_PER_CHUNK = 2048
MapFunction = Callable[[Callable, list], list]


def serial(function: Callable, items: list) -> list:
    """The default ``map_fn``: one item after the other."""
    return [function(item) for item in items]


def rotary_tables(n_layers: int, width: int, base: float, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables ``[N, width]`` for the rotate-half convention."""
    frequencies = base ** (-torch.arange(0, width, 2, device=device, dtype=torch.float32) / width)
    angles = torch.arange(n_layers, device=device, dtype=torch.float32)[:, None] * frequencies
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x[..., N, width]`` by its position along the N axis."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class CrossLayerAttention(nn.Module):
    """Two transformer layers along the stack axis, applied to every pixel independently.

    Parameters live in standard ``nn.TransformerEncoderLayer`` modules (post-norm, GELU, no
    dropout), so a straightforward reference can run the very same weights.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(config.decoder_width, config.attention_heads,
                                       config.attention_ffn, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=False)
            for _ in range(config.attention_layers))

    def forward(self, volume: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """``[B, N, C, H, W] -> [B, N, C, H, W]``. By default a GPU takes each image whole
        (few large launches), a CPU cache-sized chunks."""
        if chunk is None:
            chunk = volume.shape[-2] * volume.shape[-1] if volume.is_cuda else PIXELS_PER_CHUNK
        out = torch.empty_like(volume)
        self._run(volume, chunk, lambda x: x.permute(1, 0, 2), out)
        return out

    def logits(self, volume: torch.Tensor, chunk: int = PIXELS_PER_CHUNK,
               map_fn: MapFunction | None = None) -> torch.Tensor:
        """``[B, N, C, H, W] -> [B, N, H, W]``: the attention followed by the channel maximum,
        chunk by chunk, so the attended volume is never held whole. ``map_fn(function,
        items)`` may run the chunks in parallel (they are independent)."""
        b, n, _, h, w = volume.shape
        out = volume.new_empty((b, n, 1, h, w))
        self._run(volume, chunk, lambda x: x.amax(dim=0, keepdim=True).permute(1, 0, 2), out,
                  map_fn)
        return out[:, :, 0]

    def _run(self, volume: torch.Tensor, chunk: int, finish, out: torch.Tensor,
             map_fn: MapFunction | None = None) -> None:
        """Attend over pixel chunks in the layout ``[C, N, P]``: every projection is then one
        ``[out, C] @ [C, N * P]`` matrix product, however small N is."""
        b, n, c, h, w = volume.shape
        tables = None
        if self.config.pos_encoding == "rope":
            cos, sin = rotary_tables(n, c, self.config.rope_base, volume.device, volume.dtype)
            tables = (cos.T[:, :, None], sin.T[:, :, None])
        flat_in = volume.reshape(b, n, c, h * w)
        flat_out = out.view(b, n, out.shape[2], h * w)

        def run(job: tuple[int, int]) -> None:
            i, start = job
            part = slice(start, start + chunk)
            x = flat_in[i, :, :, part].transpose(0, 1).contiguous()
            flat_out[i, :, :, part] = finish(self.attend(x, tables))

        (map_fn or serial)(run, [(i, start) for i in range(b) for start in range(0, h * w, chunk)])

    def attend(self, x: torch.Tensor, tables: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        """Transformer layers on ``x = [C, N, P]``: P pixels, each a sequence of N tokens."""
        heads = self.config.attention_heads
        c, n, p = x.shape
        d = c // heads
        for layer in self.layers:
            if tables is not None:
                x = _rotate(x, *tables)
            attention = layer.self_attn
            q, k, v = _project(x, attention.in_proj_weight, attention.in_proj_bias) \
                .view(3, heads, d, n, p).unbind(0)
            q = q * d ** -0.5
            scores = q[:, 0, :, None] * k[:, 0, None, :]  # [heads, N_i, N_j, P]
            for e in range(1, d):
                scores.addcmul_(q[:, e, :, None], k[:, e, None, :])
            weights = scores.softmax(dim=2)
            mixed = weights[:, None, :, 0] * v[:, :, None, 0]  # [heads, d, N_i, P]
            for j in range(1, n):
                mixed.addcmul_(weights[:, None, :, j], v[:, :, None, j])
            mixed = _project(mixed.view(c, n, p), attention.out_proj.weight, attention.out_proj.bias)
            x = _layer_norm(x + mixed, layer.norm1)
            hidden = F.gelu(_project(x, layer.linear1.weight, layer.linear1.bias))
            x = _layer_norm(x + _project(hidden, layer.linear2.weight, layer.linear2.bias), layer.norm2)
        return x


def _project(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Linear layer over the channel axis of ``[C, N, P]``: one matrix product."""
    c, n, p = x.shape
    return torch.addmm(bias[:, None], weight, x.view(c, n * p)).view(-1, n, p)


def _layer_norm(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    """LayerNorm over the channel axis of ``[C, N, P]``."""
    mean = x.mean(dim=0, keepdim=True)
    centred = x - mean
    variance = (centred * centred).mean(dim=0, keepdim=True)
    return torch.addcmul(norm.bias[:, None, None], centred * torch.rsqrt(variance + norm.eps),
                         norm.weight[:, None, None])


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of ``[C, N, P]`` by the stack position (tables ``[C, N, 1]``)."""
    half = x.shape[0] // 2
    rotated = torch.cat([-x[half:], x[:half]], dim=0)
    return torch.addcmul(x * cos, rotated, sin)
