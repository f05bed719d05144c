"""The ``v3+`` head's convolutions as a compiled C kernel (CPU, float32), through
``native_head.c``.

Why: the head's convolutions have 4 to 24 input and 12 output channels; PyTorch runs each as
a library convolution at a few G multiply-accumulates per second, with a replicate-padded
copy of its input before it and a GELU pass after it, and those copies and passes took
two thirds of the head's time. The kernel reads the taps from padded rows it keeps itself
and adds the bias, the shared half over the layers' maximum, the GELU and the residual in
the same pass. Its sums run in another order and its GELU is exact to 3e-7, so the logits
differ from PyTorch's by rounding. ``STACKMFF_NATIVE_HEAD=0`` (or ``STACKMFF_NATIVE=0``)
keeps PyTorch's path.
"""

from __future__ import annotations

import ctypes
import os
from functools import cache
from pathlib import Path

import torch

from stackmff.runtime.native_build import build_library

SOURCE = Path(__file__).with_name("native_head.c")


def load_kernel(width: int) -> ctypes.CDLL | None:
    """The kernel for a head of ``width`` hidden channels, built if not cached yet; None
    where it cannot be, or with ``STACKMFF_NATIVE_HEAD=0`` (read at each call)."""
    return None if os.environ.get("STACKMFF_NATIVE_HEAD", "1") == "0" else _built(width)


@cache
def _built(width: int) -> ctypes.CDLL | None:
    kernel = build_library(SOURCE, "head", (f"-DOUTS={width}",))
    if kernel is None:
        return None
    long, pointer = ctypes.c_long, ctypes.c_void_p
    for function in (kernel.stackmff_head_conv, kernel.stackmff_head_conv1):
        function.argtypes = [pointer, long, long, long, long, pointer, pointer, pointer,
                             ctypes.c_int, long, ctypes.c_int, pointer, pointer, pointer]
        function.restype = ctypes.c_int
    return kernel


def packed(weight: torch.Tensor) -> torch.Tensor:
    """``[out, in, k, k]`` as the kernel reads it: ``[in, k, k, out]``."""
    return weight.detach().float().permute(1, 2, 3, 0).contiguous()


def _pointer(tensor: torch.Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


class NativeConvolution:
    """One of the head's convolutions: ``act(conv(x) + base) + residual`` on planar float32
    maps ``[layers, channels, rows, width]``, replicate padding, ``base`` (the shared half's
    result, one map for every layer) and ``residual`` optional; with ``with_max`` also the
    result's maximum over the layers, ``[1, outs, rows, width]``, taken in the same pass."""

    def __init__(self, kernel: ctypes.CDLL, weight: torch.Tensor, bias: torch.Tensor | None,
                 dilation: int = 1, gelu: bool = False) -> None:
        self.outs, _, self.k, _ = weight.shape
        self.function = kernel.stackmff_head_conv1 if self.outs == 1 else kernel.stackmff_head_conv
        self.weight = packed(weight)
        self.bias = None if bias is None else bias.detach().float().contiguous()
        self.dilation, self.gelu = dilation, gelu

    def __call__(self, x: torch.Tensor, base: torch.Tensor | None = None,
                 residual: torch.Tensor | None = None, with_max: bool = False):
        layers, channels, rows, width = x.shape
        out = torch.empty((layers, self.outs, rows, width))
        maximum = torch.empty((1, self.outs, rows, width)) if with_max else None
        status = self.function(x.data_ptr(), layers, channels, rows, width,
                               self.weight.data_ptr(), _pointer(self.bias), _pointer(base),
                               self.k, self.dilation, int(self.gelu), _pointer(residual),
                               out.data_ptr(), _pointer(maximum))
        if status != 0:
            raise MemoryError("out of memory in the head's convolution kernel")
        return (out, maximum) if with_max else out
