"""Atomic writes: a run's outputs appear all together or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from stackmff.errors import StackError


def write_files_atomically(files: dict[Path, bytes]) -> None:
    """Write every file to a temporary name first, then rename them all into place.

    If any write fails, the temporaries are removed and no target is created or changed.
    """
    temporaries: list[tuple[Path, Path]] = []
    mode = 0o666 & ~_umask()
    try:
        for target, data in files.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                       dir=target.parent)
            temporaries.append((Path(tmp), target))
            if hasattr(os, "fchmod"):  # mkstemp makes 0600; give the usual permissions
                os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        for tmp, target in temporaries:
            os.replace(tmp, target)
    except OSError as exc:
        for tmp, _ in temporaries:
            tmp.unlink(missing_ok=True)
        raise StackError(f"cannot write {exc.filename or 'output'}: {exc.strerror or exc}") \
            from None


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
