"""The cross-layer attention's inference pass as one compiled C kernel (CPU, float32).

Why: in PyTorch, each transformer layer over every pixel's N tokens is some 25 small
operations, each a pass over memory; the kernel in ``native_attention.c`` runs both layers on
16 pixels at a time with their tokens in cache (8 x 1024 x 1024 on 2 cores: 1.1-1.2 s
against 5.3-6.0 s for the chunked PyTorch path, logits within 1.2e-5). It is compiled on
first use with the system C compiler into the user's cache directory (``native_build``), once
per CPU and model width. Without a compiler (or with ``STACKMFF_NATIVE=0``) the PyTorch path
runs instead.
"""

from __future__ import annotations

import ctypes
from functools import cache
from pathlib import Path

import torch

from stackmff.model.attention import CrossLayerAttention, MapFunction, rotary_tables, serial
from stackmff.runtime.native_build import build_library

SOURCE = Path(__file__).with_name("native_attention.c")


@cache
def load_kernel(width: int, heads: int, ffn: int) -> ctypes.CDLL | None:
    """The kernel for these widths, compiled if not cached yet; None where it cannot be."""
    if width % 8 or ffn % 8 or width % heads:
        return None
    kernel = build_library(SOURCE, "attention", (f"-DC0={width}", f"-DHEADS={heads}",
                                                 f"-DFFN={ffn}"))
    if kernel is None:
        return None
    pointer = ctypes.c_void_p
    kernel.stackmff_attend.argtypes = [pointer, ctypes.c_int, pointer, ctypes.c_long,
                                       ctypes.c_long, ctypes.c_long, ctypes.c_int, pointer,
                                       ctypes.c_int, pointer, ctypes.c_float]
    kernel.stackmff_attend.restype = ctypes.c_int
    return kernel


def packed_weights(attention: CrossLayerAttention) -> torch.Tensor:
    """Every layer's parameters in the kernel's order, the query rows scaled by 1/sqrt(d)."""
    width = attention.config.decoder_width
    scale = torch.ones(3 * width)
    scale[:width] = (width // attention.config.attention_heads) ** -0.5
    parts = []
    for layer in attention.layers:
        projection = layer.self_attn
        parts += [projection.in_proj_weight * scale[:, None], projection.in_proj_bias * scale,
                  projection.out_proj.weight, projection.out_proj.bias,
                  layer.norm1.weight, layer.norm1.bias, layer.linear1.weight, layer.linear1.bias,
                  layer.linear2.weight, layer.linear2.bias, layer.norm2.weight, layer.norm2.bias]
    return torch.cat([p.detach().float().reshape(-1) for p in parts]).contiguous()


def native_logits(attention: CrossLayerAttention, volume: torch.Tensor, chunk: int,
                  map_fn: MapFunction | None = None) -> torch.Tensor | None:
    """What ``attention.logits(volume.float())`` returns, from the C kernel; None where the
    kernel does not apply (not a float32 or bfloat16 CPU tensor, or no kernel for this
    machine). A bfloat16 volume (what the network makes in bf16) is widened exactly as it
    is read: half the memory, the same logits."""
    config = attention.config
    if volume.device.type != "cpu" or volume.dtype not in (torch.float32, torch.bfloat16):
        return None
    kernel = load_kernel(config.decoder_width, config.attention_heads, config.attention_ffn)
    if kernel is None:
        return None
    b, n, c, h, w = volume.shape
    volume = volume.contiguous()
    weights = packed_weights(attention)
    tables = None
    if config.pos_encoding == "rope":
        cos, sin = rotary_tables(n, c, config.rope_base, "cpu", torch.float32)
        tables = torch.stack([cos.T, sin.T]).contiguous()
    logits = torch.empty((b, n, h, w))
    pixels = h * w
    eps = attention.layers[0].norm1.eps

    def run(job: tuple[int, int]) -> None:
        i, start = job
        status = kernel.stackmff_attend(
            volume[i].data_ptr(), volume.dtype == torch.bfloat16, logits[i].data_ptr(), pixels, start, min(start + chunk, pixels),
            n, weights.data_ptr(), len(attention.layers),
            None if tables is None else tables.data_ptr(), eps)
        if status != 0:
            raise MemoryError("out of memory in the attention kernel")

    (map_fn or serial)(run, [(i, start) for i in range(b) for start in range(0, pixels, chunk)])
    return logits
