"""The network's default precision: bf16 where the hardware computes it natively, else fp32.

Why: on CPUs with AVX-512 BF16 or AMX, and on GPUs, bf16 convolutions run at about twice the
rate of fp32 and move half the bytes, and on the held-out validation stacks the bf16 network
chooses the same layer as fp32 for 99.9% of pixels at the same fused PSNR (docs/speed.md).
Elsewhere bf16 is emulated and slower than fp32.
"""

from __future__ import annotations

from functools import cache

BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@cache
def cpu_computes_bf16() -> bool:
    """Whether this CPU has bf16 instructions (Linux /proc/cpuinfo; elsewhere: no)."""
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line for line in info if line.startswith("flags")), "")
    except OSError:
        return False
    return bool(BF16_CPU_FLAGS & set(flags.split(":", 1)[-1].split()))


def default_precision(device: str) -> str:
    """``"bf16"`` on a GPU that computes it or a CPU that does (:func:`cpu_computes_bf16`),
    else ``"fp32"``."""
    if device == "cuda":
        import torch

        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_computes_bf16() else "fp32"
