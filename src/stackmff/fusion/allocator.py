"""Keep freed memory for reuse while the network runs (glibc only).

Why: the network's intermediate tensors are large (tens to hundreds of MB) and short-lived.
By default glibc serves each with fresh ``mmap`` pages, or trims the heap after it is freed,
so every new tensor pays page faults and the kernel's zeroing of its pages: on 2 cores this
was a quarter of the whole fp32 forward pass (8 x 1024 x 1024: 5.3-6.5 s against 4.3-4.5 s).
Inside :func:`reusing_freed_memory` every thread allocates from the main heap, large blocks
included, and the heap is not trimmed; on leaving, the defaults come back and the heap is
trimmed once. Elsewhere (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

# mallopt parameters and glibc's defaults (malloc.h, mallopt(3))
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
DEFAULTS = {M_TRIM_THRESHOLD: 128 * 1024, M_MMAP_MAX: 65536, M_ARENA_MAX: 0}
REUSE = {M_TRIM_THRESHOLD: 2**31 - 1, M_MMAP_MAX: 0, M_ARENA_MAX: 1}
_depth = 0


@lru_cache(maxsize=None)
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


@contextmanager
def reusing_freed_memory() -> Iterator[None]:
    """For the block's duration (of nested blocks, the outermost), as the module says."""
    global _depth
    libc = _glibc()
    outermost = libc is not None and _depth == 0
    if outermost:
        for parameter, value in REUSE.items():
            libc.mallopt(parameter, value)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if outermost:
            for parameter, value in DEFAULTS.items():
                libc.mallopt(parameter, value)
            libc.malloc_trim(0)
