"""Keep freed memory for reuse in this process (glibc only).

Why: the network's intermediate tensors are large (tens to hundreds of MB) and short-lived.
By default glibc serves each of them with fresh ``mmap`` pages, or trims the heap after it is
freed, and every worker thread has its own arena; so every new tensor pays page faults and
the kernel's zeroing of its pages. On 2 cores that was a quarter of the fp32 forward pass
(8 x 1024 x 1024, medians of three processes of three passes each: 5.6-6.4 s by default,
4.0-4.9 s with this).
:func:`keep_freed_memory` makes every thread allocate from the main heap, large blocks
included, and stops the heap from being trimmed: memory, once used, stays with the process
until it exits. The command line does this at start-up; a program of one's own may call it
first thing too. Elsewhere (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from functools import cache

# mallopt parameters (malloc.h, mallopt(3))
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
KEEP = {M_ARENA_MAX: 1, M_MMAP_MAX: 0, M_TRIM_THRESHOLD: 2**31 - 1}


@cache
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


def keep_freed_memory() -> bool:
    """As the module says, for the whole process. Call it before other threads allocate
    (the arena limit counts only from then on). Returns whether it applied."""
    libc = _glibc()
    if libc is None:
        return False
    return all(libc.mallopt(parameter, value) == 1 for parameter, value in KEEP.items())


def release_free_memory() -> None:
    """Give the heap's free pages back to the system (between tiles: bounds what the process
    holds to what the next tile needs, at the cost of its page faults once per tile)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
