"""Find the stacks of a batch: folders of images, globs, lists of stacks, multi-page TIFFs,
and microscopy files (OME-TIFF, OME-Zarr, ImageJ hyperstacks).

Every stack gets a name, its path relative to the input it was found under, so that the
outputs mirror the input tree (``plate/B2/t01/`` -> ``OUTDIR/B2/t01.png``,
``plate/B2.ome.tif`` -> ``OUTDIR/B2.ome.tif``).

In a folder, a TIFF with one page is an image (a layer of its folder's stack, as ever); a TIFF
with several pages is a stack of its own: a microscopy file when it is an OME-TIFF or an ImageJ
hyperstack (as ``stackmff fuse`` reads it), else a plain multi-page TIFF. An OME-Zarr folder is
one microscopy file and is not searched for images.
"""

from __future__ import annotations

import csv
import glob
import os
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from stackmff.errors import StackError
from stackmff.io.paths import TIFF_SUFFIXES, is_image_path
from stackmff.microscopy.source import is_microscopy_file, is_zarr

LIST_SUFFIXES = frozenset({".txt", ".csv"})
# "images": image files (a folder or list); "tiff": one plain multi-page TIFF (its pages are
# the layers, or the Z planes when microscopy options are given, as for stackmff fuse);
# "microscopy": one OME-TIFF, OME-Zarr or ImageJ hyperstack
KINDS = ("images", "tiff", "microscopy")
OME_SUFFIXES = (".ome.tiff", ".ome.tif", ".ome.zarr", ".zarr")


@dataclass(frozen=True)
class StackTask:
    """One stack of a batch: what to read, what kind of input it is (:data:`KINDS`) and the
    name its outputs take under OUTDIR."""

    name: str            # POSIX path relative to OUTDIR, without a suffix
    inputs: tuple[str, ...]
    kind: str = "images"

    def __post_init__(self) -> None:
        parts = self.name.split("/")
        if not self.name or PurePosixPath(self.name).is_absolute() or {".", ".."} & set(parts):
            raise ValueError(f"a stack name must be a relative path, got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"a stack kind must be one of {KINDS}, got {self.kind!r}")


def _tiff_pages(path: Path) -> int | None:
    """How many pages a TIFF holds; ``None`` when it cannot be read or holds none."""
    import tifffile

    from stackmff.io.tiff import tifffile_errors

    try:
        with tifffile_errors(), tifffile.TiffFile(path) as tif:
            return len(tif.pages) or None
    except Exception:  # damaged: whoever reads it reports it
        return None


def _ome_named(path: Path) -> bool:
    return path.name.lower().endswith(OME_SUFFIXES)


def _file_kind(path: Path) -> str | None:
    """What a file found in a folder is: ``"image"`` (a layer), a stack of its own
    (``"tiff"``, ``"microscopy"``), or ``None`` (not an image)."""
    if path.name.startswith(".") or not is_image_path(path):
        return None
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return "image"
    pages = _tiff_pages(path)
    if pages is None:  # an unreadable OME-TIFF is a task, so that its error is recorded
        return "microscopy" if _ome_named(path) else "image"
    if pages < 2:
        return "image"
    return "microscopy" if is_microscopy_file(path) else "tiff"


def _single_kind(path: Path) -> str:
    """The kind of a file or OME-Zarr given (or matched) on its own: always a stack."""
    if is_zarr(path) or is_microscopy_file(path):
        return "microscopy"
    kind = _file_kind(path) if path.suffix.lower() in TIFF_SUFFIXES else None
    return "microscopy" if kind == "microscopy" else "tiff"


def _walk(root: Path) -> list[tuple[Path, str]]:
    """Every stack under ``root`` (itself included): each folder that directly holds two
    images or more, and each file that is a stack of its own; linked folders are followed,
    each real folder once, and OME-Zarr folders are stacks, not searched."""
    found, seen = [], set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:   # a link back up the tree, or a second link to the same folder
            subfolders[:] = []
            continue
        seen.add(real)
        here = Path(folder)
        stores = sorted(d for d in subfolders if not d.startswith(".") and is_zarr(here / d))
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".")
                               and d not in stores)
        kinds = {name: _file_kind(here / name) for name in sorted(files)
                 if (here / name).is_file()}
        if sum(kind == "image" for kind in kinds.values()) >= 2:
            found.append((here, "images"))
        found += [(here / name, kind) for name, kind in kinds.items()
                  if kind in ("tiff", "microscopy")]
        found += [(here / name, "microscopy") for name in stores]
    return found


def _name(path: Path, base: Path) -> str:
    """The stack's path below ``base``; the stack found at ``base`` itself takes the folder's
    own name, its real one when it is given as ``.`` or ``..`` (an empty name or ``..`` would
    put its outputs beside OUTDIR instead of inside)."""
    own = path.name if path.name not in ("", ".", "..") else path.resolve().name
    relative = path.relative_to(base) if path != base else Path(own)
    lower = relative.name.lower()
    for suffix in OME_SUFFIXES:
        if lower.endswith(suffix) and len(lower) > len(suffix):
            return relative.with_name(relative.name[:-len(suffix)]).as_posix()
    if path.is_file():
        relative = relative.with_suffix("")
    return relative.as_posix()


def _from_folder(root: Path, base: Path | None = None) -> list[StackTask]:
    base = root if base is None else base
    if is_zarr(root):
        return [StackTask(_name(root, base), (str(root),), "microscopy")]
    return [StackTask(_name(path, base), (str(path),), kind) for path, kind in _walk(root)]


def _from_glob(pattern: str) -> list[StackTask]:
    base = Path(pattern.split("*")[0].split("?")[0].split("[")[0])
    base = base if base.is_dir() else base.parent
    tasks = []
    for match in sorted(Path(p) for p in glob.glob(pattern)):
        if match.is_dir():
            tasks += _from_folder(match, base)
        elif match.suffix.lower() in TIFF_SUFFIXES or is_microscopy_file(match):
            tasks.append(StackTask(_name(match, base), (str(match),), _single_kind(match)))
    return tasks


def _from_list(path: Path) -> list[StackTask]:
    """One stack path per line (a CSV's first column); ``#`` starts a comment; relative
    paths are taken from the list's own folder."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is no part of a path
    except (OSError, UnicodeDecodeError) as exc:
        raise StackError(f"cannot read the stack list {path}: {exc}") from None
    rows = csv.reader(text.splitlines()) if path.suffix.lower() == ".csv" else (
        [line] for line in text.splitlines())
    entries = []
    for row in rows:
        entry = row[0].strip() if row else ""
        if entry and not entry.startswith("#"):
            entries.append(path.parent / entry)
    if path.suffix.lower() == ".csv" and entries and not entries[0].exists():
        entries = entries[1:]  # a header row (e.g. "path"), not a stack
    stacks = [p for p in entries if p.exists()]
    missing = [str(p) for p in entries if not p.exists()]
    if missing:
        raise StackError(f"{path} lists {len(missing)} path(s) that do not exist: "
                         f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    if not stacks:
        return []
    base = Path(os.path.commonpath([p.resolve() for p in stacks]))
    base = base if base.is_dir() and len(stacks) > 1 else base.parent
    return [StackTask(_name(p.resolve(), base), (str(p),),
                      "images" if p.is_dir() and not is_zarr(p) else _single_kind(p))
            for p in stacks]


def find_stacks(inputs: list[str | Path], outdir: Path | None = None) -> list[StackTask]:
    """The stacks that ``inputs`` name, in a stable order; with ``outdir``, what lies in it
    (a previous run's results) is no stack, and an input folder that is OUTDIR is refused.

    Raises:
        StackError: an input that does not exist, OUTDIR as an input, no stack found (naming
            where it looked), or two stacks that would write to the same outputs.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    if not inputs:
        raise StackError("no inputs given")
    if outdir is not None:
        _check_not_outdir(inputs, outdir)
    tasks: list[StackTask] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            tasks += _from_folder(path)
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            tasks += _from_list(path)
        elif path.is_file() and (path.suffix.lower() in TIFF_SUFFIXES
                                 or is_microscopy_file(path)):
            tasks.append(StackTask(_name(path, path.parent), (str(path),), _single_kind(path)))
        elif path.is_file():
            raise StackError(f"{path} is neither a folder, a multi-page TIFF, a microscopy "
                             "file nor a list of stacks (.txt, .csv)")
        elif glob.has_magic(str(item)):
            tasks += _from_glob(str(item))
        else:
            raise StackError(f"no such file or folder: {item}")
    if outdir is not None:
        tasks = _outside(tasks, outdir, given=[Path(p) for p in inputs if Path(p).is_file()])
    if not tasks:
        raise StackError(f"no stack found in {', '.join(map(str, inputs))} (looked for folders "
                         "holding two images or more, multi-page TIFFs and microscopy files)")
    seen: dict[str, StackTask] = {}
    for task in tasks:
        if task.name in seen:
            raise StackError(f"two stacks would write the same outputs {task.name!r}: "
                             f"{seen[task.name].inputs[0]} and {task.inputs[0]}")
        seen[task.name] = task
    return tasks


def _check_not_outdir(inputs: list[str | Path], outdir: Path) -> None:
    """Results written into the folder being searched would be fused as stacks next time."""
    target = outdir.resolve()
    for item in inputs:
        if Path(item).is_dir() and Path(item).resolve() == target:
            raise StackError(f"the output folder {outdir} is the input folder {item}: write "
                             "the results to another folder")


def _outside(tasks: list[StackTask], outdir: Path, given: list[Path]) -> list[StackTask]:
    """The tasks found by searching whose inputs do not lie in OUTDIR (a previous run's
    outputs), with a warning naming how many were left out; files given by name are kept (the
    output checks refuse what would overwrite them)."""
    target = outdir.resolve()
    named = {p.resolve() for p in given}
    kept = [task for task in tasks
            if any(Path(p).resolve() in named for p in task.inputs)
            or not all(Path(p).resolve().is_relative_to(target) for p in task.inputs)]
    if len(kept) < len(tasks):
        warnings.warn(f"left out {len(tasks) - len(kept)} stack(s) inside the output folder "
                      f"{outdir} (results of a previous run)", stacklevel=3)
    return kept
