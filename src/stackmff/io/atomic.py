"""Atomic writes: a run's outputs appear all together or not at all.

Each file goes to a short hidden temporary in its own folder (so the name fits whatever the
output's length, and the rename stays on one file system), is flushed to disk, and only then
renamed into place. A folder output (an OME-Zarr store) is filled in a hidden temporary folder
by a writer function and renamed the same way. The renames run with SIGINT and SIGTERM held back, and an output that was
there before is kept as a backup until every rename has succeeded, so an interrupt or a failure
never leaves half a set. Temporaries, backups and the folders a failed call made are removed.

A temporary's name carries its writer (a tag of the host and the process id), so that the
ones a killed process left behind can be told from those still being written
(:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from stackmff.errors import StackError

_PREFIX, _SUFFIX = ".stackmff-", ".tmp"
_HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STALE_SECONDS = 24 * 3600   # a temporary of another host (or unnamed writer) is stale after this
FolderWriter = Callable[[Path], None]


def write_files_atomically(files: dict[Path, bytes | FolderWriter]) -> None:
    """Write every file to a temporary name first, then rename them all into place.

    Args:
        files: the contents of each output, by output path: bytes for a file, or a function
            that fills the (empty, existing) folder it is given, for a folder output.

    Raises:
        StackError: a file could not be written; no output was created or changed then.
    """
    made: list[Path] = []  # folders this call created, outermost first
    staged: list[tuple[Path, Path]] = []  # (temporary, output)
    failure: BaseException | None = None
    current: Path | None = None
    try:
        for target, data in files.items():
            current = target
            _make_folders(target.parent, made)
            if callable(data):
                folder = Path(tempfile.mkdtemp(prefix=_prefix(), suffix=_SUFFIX,
                                               dir=target.parent))
                staged.append((folder, target))
                folder.chmod(0o777 & ~_umask())  # mkdtemp makes 0700
                data(folder)
                continue
            fd, name = tempfile.mkstemp(prefix=_prefix(), suffix=_SUFFIX, dir=target.parent)
            staged.append((Path(name), target))
            _fill(fd, data)
    except BaseException as exc:  # an interrupt too: nothing may be left behind
        failure = exc
    with _signals_held():
        if failure is None:
            try:
                _swap_in(staged)
            except _SwapError as exc:
                failure, current = exc.error, exc.target
            else:
                _sync_folders({target.parent for _, target in staged} |
                              {folder.parent for folder in made})
        if failure is not None:
            for temporary, _ in staged:
                _remove(temporary)
            for folder in reversed(made):
                with contextlib.suppress(OSError):
                    folder.rmdir()
    if isinstance(failure, OSError):
        reason = failure.strerror or str(failure)
        raise StackError(f"cannot write {current or 'output'}: {reason}") from None
    if failure is not None:
        raise failure


class _SwapError(Exception):
    """A rename failed; carries the output it was for."""

    def __init__(self, target: Path, error: OSError) -> None:
        super().__init__(str(error))
        self.target, self.error = target, error


def _make_folders(folder: Path, made: list[Path]) -> None:
    """Create ``folder`` and any missing parents, noting each one created here."""
    missing = []
    while not folder.exists() and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:  # made by someone else meanwhile: not ours to remove
            continue
        made.append(path)


def _fill(fd: int, data: bytes) -> None:
    """Write the data to the open temporary and push it to disk before any rename."""
    if hasattr(os, "fchmod"):  # mkstemp makes 0600; give the usual permissions
        os.fchmod(fd, 0o666 & ~_umask())
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _swap_in(staged: list[tuple[Path, Path]]) -> None:
    """Rename every temporary onto its output; on a failure put back what was there."""
    done: list[tuple[Path, Path | None]] = []  # (output, backup of what it replaced)
    try:
        for temporary, target in staged:
            try:
                backup = _back_up(target, temporary.is_dir())
            except OSError as exc:
                raise _SwapError(target, exc) from None
            try:
                os.replace(temporary, target)
            except OSError as exc:
                if backup is not None:
                    _restore(backup, target)
                raise _SwapError(target, exc) from None
            done.append((target, backup))
    except _SwapError:
        for target, backup in reversed(done):
            if backup is None:
                _remove(target)
            else:
                _restore(backup, target)
        raise
    for _, backup in done:
        if backup is not None:
            _remove(backup)


def _back_up(target: Path, folder_output: bool = False) -> Path | None:
    """Keep what is at ``target`` under a hidden name; None when there is nothing to keep.

    A hard link keeps the output in place until the rename swaps it; where links are not
    supported the output is moved aside instead.
    """
    if not os.path.lexists(target):
        return None
    if target.is_dir() and not target.is_symlink():
        if not folder_output:
            return None  # a folder in the way makes the rename fail; it is never moved
        backup = target.parent / f"{_prefix()}{secrets.token_hex(4)}{_SUFFIX}"
        os.rename(target, backup)  # a folder output replaces the previous one as a whole
        return backup
    for _ in range(100):
        backup = target.parent / f"{_prefix()}{secrets.token_hex(4)}{_SUFFIX}"
        try:
            os.link(target, backup, follow_symlinks=False)
            return backup
        except FileExistsError:
            continue
        except (OSError, NotImplementedError):
            if os.path.lexists(backup):
                continue
            os.replace(target, backup)
            return backup
    raise FileExistsError(17, "no free name for a backup", str(target))


def _restore(backup: Path, target: Path) -> None:
    """Put the backup back at ``target`` (best effort: this runs while failing already)."""
    if backup.is_dir() and not backup.is_symlink():
        shutil.rmtree(target, ignore_errors=True)  # the new folder output, renamed in before
        with contextlib.suppress(OSError):
            os.rename(backup, target)
        return
    with contextlib.suppress(OSError):
        os.replace(backup, target)
    _remove(backup)  # still there when both names were links to the same file


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
        return
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def _sync_folders(folders: set[Path]) -> None:
    """Make the renames durable; skipped where a folder cannot be opened (Windows)."""
    for folder in sorted(folders):
        try:
            fd = os.open(folder, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold back SIGINT and SIGTERM inside the block, then deliver any that came.

    Python runs signal handlers in the main thread only, so elsewhere there is nothing to hold.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous: dict[int, object] = {}

    def hold(signum, frame) -> None:
        caught.append(signum)

    try:
        for signum in _HELD_SIGNALS:
            handler = signal.getsignal(signum)
            if handler is None or handler == signal.SIG_IGN:
                continue  # set outside Python, or ignored: leave it alone
            previous[signum] = signal.signal(signum, hold)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(caught):
            signal.raise_signal(signum)


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:4]


def _prefix() -> str:
    """``.stackmff-<host>-<pid>-``: who writes the temporary."""
    return f"{_PREFIX}{_host_tag()}-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def _stale(path: Path, host: str, now: float) -> bool:
    """A temporary whose writer on this host is gone, or any other one untouched for a day."""
    parts = path.name[len(_PREFIX):].split("-")
    if len(parts) == 3 and parts[0] == host and parts[1].isdigit():
        return not _alive(int(parts[1]))
    try:
        return now - path.lstat().st_mtime > STALE_SECONDS
    except OSError:
        return False


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporaries (``.stackmff-*.tmp``) that a killed writer left in ``folder``.

    Only names of this module are touched, and only those no living writer can still use:
    a dead process of this host, or (another host, an older name) a day without change.
    Returns what was removed.
    """
    try:
        entries = [entry for entry in Path(folder).iterdir()
                   if entry.name.startswith(_PREFIX) and entry.name.endswith(_SUFFIX)]
    except OSError:
        return []
    host, now = _host_tag(), time.time()
    removed = [entry for entry in entries if _stale(entry, host, now)]
    for entry in removed:
        _remove(entry)
    return removed


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
