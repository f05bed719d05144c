"""Turn what the user typed (folders, globs, files) into an ordered list of image files, and
check where outputs may go."""

from __future__ import annotations

import glob
import os
import re
import warnings
from collections.abc import Collection, Sequence
from pathlib import Path

from stackmff.errors import StackError

# camera RAW files, developed by LibRaw (the raw extra): every format it reads
RAW_SUFFIXES = frozenset(
    {".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf",
     ".rw2", ".rwl", ".pef", ".ptx", ".srw", ".x3f", ".3fr", ".fff", ".iiq", ".mos", ".mef",
     ".mrw", ".erf", ".kdc", ".dcr", ".gpr"}
)
# HEIF images (phones), decoded by libheif (the heif extra)
HEIF_SUFFIXES = frozenset({".heic", ".heif", ".hif"})
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".jpe", ".jp2"}
) | RAW_SUFFIXES | HEIF_SUFFIXES
TIFF_SUFFIXES = frozenset({".tif", ".tiff"})
# what an output may be: 16 bit in PNG and TIFF, 8 bit in the others
WRITABLE_SUFFIXES = frozenset({".png", ".tif", ".tiff", ".jpg", ".jpeg", ".jpe", ".bmp", ".webp"})


def check_output_paths(paths: Sequence[Path], inputs: Sequence[Path] = (),
                       folders: Collection[Path] = ()) -> None:
    """Outputs are not folders (except ``folders``, written as folders), differ from each
    other, overwrite no input, and a folder output holds no input (it is replaced whole).

    Files are compared by device and inode, as :func:`os.path.samefile` does, so that an input
    reached under another name (a hard link, a linked folder, a bind mount) is one file.

    Raises:
        StackError: the first of these that fails.
    """
    for path in paths:
        if path.is_dir() and path not in folders:
            raise StackError(f"cannot write {path}: it is a folder")
    if len({file_identity(p) for p in paths}) != len(paths):
        raise StackError("output paths must differ from each other")
    sources = {file_identity(p): Path(p) for p in inputs}
    for path in paths:
        source = sources.get(file_identity(path))
        if source is not None:
            also = "" if source.resolve() == path.resolve() else f" (the same file as {source})"
            raise StackError(f"refusing to overwrite input file {path}{also}")
    for folder in folders:
        for source in inputs:
            if _holds(folder, Path(source)):
                raise StackError(f"refusing to replace {folder}: it holds the input {source}")


def check_inside(paths: Sequence[Path], folder: Path) -> None:
    """Each path, links followed, lies inside ``folder``: an output that leads out of it would
    replace (or, present, stand for) a file that is not the run's.

    Raises:
        StackError: the first path outside.
    """
    root = Path(folder).resolve()
    for path in paths:
        if not Path(path).resolve().is_relative_to(root):
            link = " (a symbolic link)" if Path(path).is_symlink() else ""
            raise StackError(f"refusing to write {path}{link}: it leads outside the output "
                             f"folder {folder}")


def file_identity(path: Path) -> tuple:
    """What a path names on the file system: the device and inode of the file, or of its
    nearest existing folder followed by the names below it, so two names of one file match."""
    path = Path(path).resolve()
    below: list[str] = []
    while True:
        try:
            found = os.stat(path)
        except OSError:
            if path.parent == path:
                return (str(path), *below)
            below.insert(0, path.name)
            path = path.parent
            continue
        if not found.st_ino:  # a file system without inode numbers: the name must do
            return (str(path), *below)
        return (found.st_dev, found.st_ino, *below)


def _holds(folder: Path, source: Path) -> bool:
    """Whether ``source`` is ``folder`` or lies inside it, under whatever names."""
    if not folder.exists():
        return False
    inside = file_identity(folder)
    return any(file_identity(p) == inside for p in (source, *source.resolve().parents))


def natural_key(path: Path) -> list[object]:
    """Sort key that orders ``2.png`` before ``10.png`` (digits compare as numbers)."""
    parts = re.split(r"(\d+)", path.name.lower())
    return [int(p) if p.isdigit() else p for p in parts]


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def camera_kind(path: Path) -> str | None:
    """``"raw"`` or ``"heif"`` for the camera files that need their own decoder (chosen by
    the name: a RAW file is often a TIFF inside, which must not be read as one); else
    ``None``."""
    suffix = Path(path).suffix.lower()
    return "raw" if suffix in RAW_SUFFIXES else "heif" if suffix in HEIF_SUFFIXES else None


def expand_inputs(inputs: list[str | Path]) -> list[Path]:
    """Expand folders (natural order) and glob patterns; keep explicit files in given order.

    Non-image files found inside folders or globs are skipped with a warning. An explicit
    file is kept whatever its name, so that reading it reports a clear error if it is not an
    image.

    Raises:
        StackError: a missing file or folder, a glob that matches nothing, or one file reached
            twice (given twice, or given with its own folder): it would be fused as two layers.
    """
    from stackmff.errors import StackError

    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    files: list[Path] = []
    first_seen: dict[Path, Path] = {}

    def add(found: list[Path]) -> None:
        for path in found:
            key = path.resolve()
            if key in first_seen:
                also = "" if first_seen[key] == path else f" (also as {first_seen[key]})"
                raise StackError(f"{path} is given twice{also}: each file is one layer, so it "
                                 "would be fused twice")
            first_seen[key] = path
            files.append(path)

    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted((p for p in path.iterdir() if p.is_file()), key=natural_key)
            add(_keep_images(found, where=str(path)))
        elif path.is_file():
            add([path])
        elif glob.has_magic(str(item)):
            found = sorted((Path(p) for p in glob.glob(str(item)) if Path(p).is_file()),
                           key=natural_key)
            if not found:
                raise StackError(f"no files match {item!r}")
            add(_keep_images(found, where=str(item)))
        else:
            raise StackError(f"no such file or folder: {item}")
    return files


def _keep_images(paths: list[Path], where: str) -> list[Path]:
    images = [p for p in paths if is_image_path(p) and not p.name.startswith(".")]
    skipped = [p.name for p in paths if p not in images and not p.name.startswith(".")]
    if skipped:
        shown = ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        warnings.warn(f"skipped {len(skipped)} non-image file(s) in {where}: {shown}",
                      stacklevel=3)
    return images
