"""``total += interpolate(branch, total's size, "nearest")`` in one pass over ``total`` (CPU,
float32, channels-last), through the C kernel in ``native_upsample.c``.

Why: the pyramid-FC's stride-3 branch is upsampled by a factor that is not a whole number;
PyTorch's interpolate writes the full-resolution copy first (a fresh map as large as the
block's widest), and that copy took as long as the rest of the first block's token mixing
together. The kernel reads the small branch in place: the same additions, the same bits.
"""

from __future__ import annotations

import ctypes
import os
from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F

from stackmff.model.blocks import add_nearest_upsampled_
from stackmff.runtime.native_build import build_library

SOURCE = Path(__file__).with_name("native_upsample.c")


@cache
def load_kernel() -> ctypes.CDLL | None:
    """The kernel, built if not cached yet; None where it cannot be, or with
    ``STACKMFF_NATIVE_UPSAMPLE=0`` (PyTorch's interpolate, to compare)."""
    if os.environ.get("STACKMFF_NATIVE_UPSAMPLE", "1") == "0":
        return None
    kernel = build_library(SOURCE, "upsample")
    if kernel is not None:
        long, pointer = ctypes.c_long, ctypes.c_void_p
        kernel.stackmff_add_nearest.argtypes = [pointer, long, long, long, long, pointer, long,
                                                long, pointer, pointer]
        kernel.stackmff_add_nearest.restype = None
    return kernel


@cache
def nearest_sources(size: int, out: int) -> torch.Tensor:
    """The source index of every output index, as PyTorch's nearest interpolation picks it."""
    grid = torch.arange(size, dtype=torch.float64).view(1, 1, size)
    return F.interpolate(grid, size=out, mode="nearest").view(out).to(torch.int64)


def add_nearest_upsampled_native_(total: torch.Tensor, branch: torch.Tensor) -> None:
    """:func:`stackmff.model.blocks.add_nearest_upsampled_`, through the kernel where the
    tensors suit it (float32 CPU tensors, channels-last, no gradient wanted)."""
    (b, c, height, width), (h, w) = total.shape, branch.shape[-2:]
    kernel = load_kernel()
    if (kernel is None or (height, width) == (2 * h, 2 * w) or total.device.type != "cpu"
            or total.dtype != torch.float32 or branch.dtype != torch.float32
            or branch.shape[:2] != total.shape[:2]
            or (torch.is_grad_enabled() and (total.requires_grad or branch.requires_grad))
            or not total.is_contiguous(memory_format=torch.channels_last)
            or not branch.is_contiguous(memory_format=torch.channels_last)):
        add_nearest_upsampled_(total, branch)
        return
    rows, cols = nearest_sources(h, height), nearest_sources(w, width)
    kernel.stackmff_add_nearest(total.data_ptr(), b, height, width, c, branch.data_ptr(), h, w,
                                rows.data_ptr(), cols.data_ptr())
