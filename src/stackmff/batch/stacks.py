"""Find the stacks of a batch: folders of images, globs, lists of stacks, multi-page TIFFs.

Every stack gets a name, its path relative to the input it was found under, so that the
outputs mirror the input tree (``plate/B2/t01/`` -> ``OUTDIR/B2/t01.png``).
"""

from __future__ import annotations

import csv
import glob
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from stackmff.errors import StackError
from stackmff.io.paths import TIFF_SUFFIXES, is_image_path

LIST_SUFFIXES = frozenset({".txt", ".csv"})


@dataclass(frozen=True)
class StackTask:
    """One stack of a batch: what to read and the name its outputs take under OUTDIR."""

    name: str            # POSIX path relative to OUTDIR, without a suffix
    inputs: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.name or PurePosixPath(self.name).is_absolute() or ".." in self.name.split("/"):
            raise ValueError(f"a stack name must be a relative path, got {self.name!r}")


def _images_in(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir()
            if p.is_file() and is_image_path(p) and not p.name.startswith(".")]


def _stack_folders(root: Path) -> list[Path]:
    """Every folder under ``root`` (itself included) that directly holds two images or more;
    linked folders are followed, each real folder once."""
    found, seen = [], set()
    for folder, subfolders, _ in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:   # a link back up the tree, or a second link to the same folder
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        if len(_images_in(Path(folder))) >= 2:
            found.append(Path(folder))
    return found


def _name(path: Path, base: Path) -> str:
    relative = path.relative_to(base) if path != base else Path(path.name)
    if path.is_file():
        relative = relative.with_suffix("")
    return relative.as_posix()


def _from_folder(root: Path) -> list[StackTask]:
    return [StackTask(_name(folder, root), (str(folder),)) for folder in _stack_folders(root)]


def _from_glob(pattern: str) -> list[StackTask]:
    base = Path(pattern.split("*")[0].split("?")[0].split("[")[0])
    base = base if base.is_dir() else base.parent
    tasks = []
    for match in sorted(Path(p) for p in glob.glob(pattern)):
        if match.is_dir():
            tasks += [StackTask(_name(folder, base), (str(folder),))
                      for folder in _stack_folders(match)]
        elif match.suffix.lower() in TIFF_SUFFIXES:
            tasks.append(StackTask(_name(match, base), (str(match),)))
    return tasks


def _from_list(path: Path) -> list[StackTask]:
    """One stack path per line (a CSV's first column); ``#`` starts a comment; relative
    paths are taken from the list's own folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StackError(f"cannot read the stack list {path}: {exc}") from None
    rows = csv.reader(text.splitlines()) if path.suffix.lower() == ".csv" else (
        [line] for line in text.splitlines())
    entries = []
    for row in rows:
        entry = row[0].strip() if row else ""
        if entry and not entry.startswith("#"):
            entries.append(path.parent / entry)
    stacks = [p for p in entries if p.exists()]
    missing = [str(p) for p in entries if not p.exists()]
    if missing:
        raise StackError(f"{path} lists {len(missing)} path(s) that do not exist: "
                         f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    if not stacks:
        return []
    base = Path(os.path.commonpath([p.resolve() for p in stacks]))
    base = base if base.is_dir() and len(stacks) > 1 else base.parent
    return [StackTask(_name(p.resolve(), base), (str(p),)) for p in stacks]


def find_stacks(inputs: list[str | Path]) -> list[StackTask]:
    """The stacks that ``inputs`` name, in a stable order.

    Raises:
        StackError: an input that does not exist, no stack found (naming where it looked),
            or two stacks that would write to the same outputs.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    if not inputs:
        raise StackError("no inputs given")
    tasks: list[StackTask] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            tasks += _from_folder(path)
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            tasks += _from_list(path)
        elif path.is_file() and path.suffix.lower() in TIFF_SUFFIXES:
            tasks.append(StackTask(path.stem, (str(path),)))
        elif path.is_file():
            raise StackError(f"{path} is neither a folder, a multi-page TIFF nor a list of "
                             "stacks (.txt, .csv)")
        elif glob.has_magic(str(item)):
            tasks += _from_glob(str(item))
        else:
            raise StackError(f"no such file or folder: {item}")
    if not tasks:
        raise StackError(f"no stack found in {', '.join(map(str, inputs))} (looked for folders "
                         "holding two images or more, and multi-page TIFFs)")
    seen: dict[str, StackTask] = {}
    for task in tasks:
        if task.name in seen:
            raise StackError(f"two stacks would write the same outputs {task.name!r}: "
                             f"{seen[task.name].inputs[0]} and {task.inputs[0]}")
        seen[task.name] = task
    return tasks
