"""Compile a C source of this package on first use into the user's cache directory, once per
source, compiler, flags, CPU and instruction set, and load it.

Why: the kernels in ``runtime`` are small C files with no build step at install time; a
library built on one CPU may not run on another that shares the home directory, and a
half-written library must never be loaded. Without a compiler (or with
``STACKMFF_NATIVE=0``) the caller gets None and runs its PyTorch path.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

# no -ffast-math: with it, gcc < 13 links code into the library that switches the loading
# thread's floating point to flush denormals to zero
FLAGS = ["-O3", "-fno-math-errno", "-ffp-contract=fast", "-std=c11", "-shared", "-fPIC"]
_build_lock = threading.Lock()


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "stackmff"


def _cpu_identity() -> str:
    """What ``-march=native`` compiles for."""
    try:
        with open("/proc/cpuinfo") as info:
            return next((line for line in info if line.startswith(("flags", "Features"))), "")
    except OSError:
        return platform.processor()


def _arch() -> str:
    """The instruction set kernels are built for: this CPU's, or ``$STACKMFF_NATIVE_ARCH``
    (a ``-march`` value such as ``x86-64-v3``, AVX2 and FMA only: how a laptop runs it)."""
    return os.environ.get("STACKMFF_NATIVE_ARCH") or "native"


def _compiler() -> str | None:
    return os.environ.get("CC") or next(
        (found for name in ("cc", "gcc", "clang") if (found := shutil.which(name))), None)


def build_library(source: Path, prefix: str, defines: tuple[str, ...] = ()) -> ctypes.CDLL | None:
    """``source`` compiled with ``defines`` (cached as ``prefix-<key>.so``, the key covering
    the headers beside it) and loaded; None where it cannot be."""
    if os.environ.get("STACKMFF_NATIVE", "1") == "0":
        return None
    compiler = _compiler()
    if compiler is None:
        return None
    headers = [header.read_text() for header in sorted(source.parent.glob("*.h"))]
    key = hashlib.sha256("\0".join([source.read_text(), *headers, compiler, *FLAGS, *defines, _arch(),
                                    platform.machine(), _cpu_identity()]).encode()).hexdigest()[:16]
    library = cache_dir() / f"{prefix}-{key}{'.dll' if os.name == 'nt' else '.so'}"
    with _build_lock:
        if not library.exists() and not _compile(compiler, source, list(defines), library):
            return None
    try:
        return ctypes.CDLL(str(library))
    except OSError:
        return None


def _compile(compiler: str, source: Path, defines: list[str], library: Path) -> bool:
    """Build into a temporary file and move it in place, so a half-written library is never
    loaded; without ``-march=native`` where the compiler does not know it."""
    try:
        library.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=library.parent) as work:
            built = Path(work) / library.name
            for arch in ([f"-march={_arch()}"], []):
                command = [compiler, *FLAGS, *arch, *defines, str(source), "-o", str(built), "-lm"]
                if subprocess.run(command, capture_output=True, timeout=300).returncode == 0:
                    os.replace(built, library)
                    return True
    except (OSError, subprocess.SubprocessError):
        pass
    return False
