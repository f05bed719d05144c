"""napari reader: a folder of images, a glob or a multi-page TIFF opens as one Z-stack layer
(microscopy files: see :mod:`stackmff.napari.hyperstack_reader`).

The layer keeps the files' pixel type (8 or 16 bit) with the type's full range as contrast
limits (so a 16-bit stack is shown as stored, not stretched), and its metadata names the file
of every layer, so that the fuse widget never saves over an input.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from stackmff.errors import StackError
from stackmff.io import Stack, expand_inputs, load_stack
from stackmff.io.image import probe_image
from stackmff.io.paths import TIFF_SUFFIXES, is_image_path

LayerData = tuple[np.ndarray, dict, str]
PathOrPaths = str | Path | Sequence[str | Path]


def get_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list[LayerData]] | None:
    """napari's reader hook: :func:`read_stack` if ``path`` is a focus stack, else ``None``.

    A focus stack is a folder or glob with at least two images, a TIFF with at least two
    pages, or a list of image files (napari's "open as stack"). Anything else is left to
    other readers; a file that cannot be read is left to them too. A microscopy file
    (OME-TIFF, OME-Zarr, ImageJ hyperstack) opens one layer per channel instead
    (:func:`stackmff.napari.hyperstack_reader.read_microscopy`).
    """
    from stackmff.napari.hyperstack_reader import is_microscopy, read_microscopy

    if is_microscopy(path):
        return read_microscopy
    return read_stack if is_stack(path) else None


def is_stack(path: PathOrPaths) -> bool:
    """Whether ``path`` holds at least two layers, judged from names and headers only."""
    paths = _as_list(path)
    if not paths:
        return False
    if len(paths) > 1:
        return all(Path(p).is_file() and is_image_path(Path(p)) for p in paths)
    only = Path(paths[0])
    if only.is_file() and only.suffix.lower() not in TIFF_SUFFIXES:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # skipped files are reported when reading
            files = expand_inputs([paths[0]])
            if len(files) != 1:
                return len(files) > 1
            info = probe_image(files[0])
    except StackError:
        return False
    return info is not None and info.layers >= 2


def read_stack(path: PathOrPaths) -> list[LayerData]:
    """Load a focus stack as one image layer ``(L, H, W[, 3])`` in the files' pixel type.

    Raises:
        StackError: what :func:`stackmff.load_stack` refuses (unreadable files, sizes that
            differ, a stack too big for the memory), in one line.
    """
    paths = _as_list(path)
    return [stack_layer_data(load_stack(paths), _name_of(paths))]


def stack_layer_data(stack: Stack, name: str) -> LayerData:
    """The layer data tuple of a loaded stack: its own pixel type, its range, its files."""
    top = int(np.iinfo(stack.dtype).max)
    metadata = {"stackmff": {"paths": [str(p) for p in stack.paths]}}
    kwargs = {"name": name, "rgb": stack.is_colour, "contrast_limits": (0, top),
              "metadata": metadata}
    return stack.to_output(stack.layers), kwargs, "image"


def _as_list(path: PathOrPaths) -> list[str | Path]:
    return [path] if isinstance(path, (str, Path)) else list(path)


def _name_of(paths: list[str | Path]) -> str:
    first = Path(paths[0])
    if len(paths) > 1 or not (first.is_dir() or first.is_file()):  # a list, or a glob
        return first.parent.name or str(first.parent)
    return first.name if first.is_dir() else first.stem
