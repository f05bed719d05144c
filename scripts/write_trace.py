"""What a process changed on the file system, from ``strace``: every file or folder it created,
wrote, renamed or removed, so that a hostile case can check that nothing outside its own
folder was touched.

Used by hostile_cases.py (``--strace``). A path the process created and removed again (a
temporary) is no change; Python's byte-code caches are not the program's writes.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

CALLS = "openat,open,creat,rename,renameat,renameat2,mkdir,mkdirat,unlink,unlinkat,rmdir"
_LINE = re.compile(r'^\d+\s+(?P<call>\w+)\((?P<args>.*)\)\s+=\s+(?P<result>-?\d+)')
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC")
NOISE = ("__pycache__", "/dev/", "/proc/", "/sys/")


def available() -> bool:
    return shutil.which("strace") is not None


def traced(command: list[str], log: Path) -> list[str]:
    """``command`` run under strace, following its children, logging to ``log``."""
    return ["strace", "-f", "-qq", "-s", "4096", "-e", f"trace={CALLS}", "-o", str(log),
            *command]


def changes(log: Path, cwd: Path) -> tuple[set[Path], set[Path]]:
    """``(created or written, removed or renamed away)`` paths, resolved against ``cwd``."""
    made, gone = set(), set()
    for line in log.read_text(errors="replace").splitlines():
        match = _LINE.match(line)
        if not match or int(match["result"]) < 0:
            continue
        call, args = match["call"], match["args"]
        paths = [cwd / bytes(p, "utf-8").decode("unicode_escape") for p in _STRING.findall(args)]
        if not paths:
            continue
        if call in ("open", "openat", "creat"):
            if call == "creat" or any(flag in args for flag in _WRITE_FLAGS):
                made.add(paths[0])
        elif call.startswith("rename") and len(paths) == 2:
            gone.add(paths[0])
            made.add(paths[1])
        elif call.startswith("mkdir"):
            made.add(paths[0])
        else:  # unlink, unlinkat, rmdir
            gone.add(paths[0])
    return made, gone


def outside(log: Path, cwd: Path, folder: Path) -> list[str]:
    """Changes outside ``folder``: a path written there that is still there, or one removed
    there that the process had not made itself."""
    made, gone = changes(log, cwd)
    root = os.path.realpath(folder)
    problems = []
    for path in sorted(made | gone):
        real = os.path.realpath(path)
        if real.startswith(root + os.sep) or real == root or any(n in real for n in NOISE):
            continue
        if path in made and os.path.lexists(path):
            problems.append(f"wrote {path}")
        elif path in gone and path not in made:
            problems.append(f"removed {path}")
    return problems
