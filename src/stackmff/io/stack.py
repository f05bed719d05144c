"""Load a focus stack: many files or one multi-page TIFF -> float32 ``(L, H, W[, C])``."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from stackmff.errors import StackError
from stackmff.io.image import ImageInfo, from_float, probe_image, read_image, to_float
from stackmff.io.paths import expand_inputs
from stackmff.progress import progress


@dataclass
class Stack:
    """A loaded focus stack.

    Attributes:
        layers: ``(L, H, W)`` grey or ``(L, H, W, 3)`` RGB, float32 in [0, 1].
        dtype: the integer type of the files (``uint8`` or ``uint16``); outputs use it.
        paths: the file each layer came from (a multi-page TIFF repeats its path).
    """

    layers: np.ndarray
    dtype: np.dtype = field(default_factory=lambda: np.dtype(np.uint8))
    paths: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.layers.shape[0])

    @property
    def is_colour(self) -> bool:
        return self.layers.ndim == 4

    def to_output(self, image: np.ndarray) -> np.ndarray:
        """Convert a float image of this stack to the stack's own bit depth."""
        return from_float(image, self.dtype)


def load_stack(inputs: str | Path | Sequence[str | Path], match_sizes: bool = False) -> Stack:
    """Load a focus stack from a folder, a glob, a list of files, or a multi-page TIFF.

    Grey layers in a colour stack are promoted to RGB; 8-bit layers in a 16-bit stack are
    scaled, and the stack keeps the widest bit depth.

    Every header is read first: a stack whose declared size would not fit in the available
    memory is refused before any pixels are decoded. Alpha channels are dropped with one
    warning for the whole stack.

    Args:
        match_sizes: resize layers whose size differs to the middle layer's size (for
            registration, which then corrects what the resize leaves); otherwise differing
            sizes are an error.

    Raises:
        StackError: no images, a single layer, an unreadable file, a stack too big for the
            memory, or layers of different sizes (without ``match_sizes``).
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    paths = expand_inputs(list(inputs))
    if not paths:
        raise StackError(f"no images found in {', '.join(map(str, inputs))}")
    _check_memory([probe_image(path) for path in paths])
    pages: list[np.ndarray] = []
    owners: list[Path] = []
    with_alpha: list[str] = []
    for path in progress(paths, desc="load", total=len(paths)):
        decoded = read_image(path)
        pages.extend(decoded.pages)
        owners.extend([path] * len(decoded.pages))
        if decoded.alpha_dropped:
            with_alpha.append(path.name)
    if with_alpha:
        shown = ", ".join(with_alpha[:3]) + (" ..." if len(with_alpha) > 3 else "")
        files = "file" if len(with_alpha) == 1 else "files"
        warnings.warn(f"alpha channel dropped in {len(with_alpha)} {files} ({shown})",
                      stacklevel=2)
    if len(pages) < 2:
        raise StackError(f"a focus stack needs at least 2 images, got {len(pages)} "
                         f"({', '.join(map(str, paths))})")
    if match_sizes:
        pages = _match_sizes(pages)
    else:
        _check_sizes(pages, owners)
    dtype = np.dtype(np.uint16) if any(p.dtype == np.uint16 for p in pages) else np.dtype(np.uint8)
    colour = any(p.ndim == 3 for p in pages)
    height, width = pages[0].shape[:2]
    shape = (len(pages), height, width) + ((3,) if colour else ())
    layers = np.empty(shape, np.float32)
    for i, page in enumerate(pages):
        image = to_float(page)
        layers[i] = image[..., None] if colour and image.ndim == 2 else image
    return Stack(layers=layers, dtype=dtype, paths=owners)


def available_memory() -> int | None:
    """Bytes of memory that new allocations can take now, or ``None`` where unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return available if available > 0 else None


def _check_memory(infos: list[ImageInfo | None]) -> None:
    """Refuse a stack whose declared size needs more memory than is available.

    Counts the float32 layers and the decoded integer pages; files without a readable header
    (formats only OpenCV knows) are not counted.
    """
    known = [info for info in infos if info is not None]
    if not known:
        return
    largest = max(known, key=lambda info: info.height * info.width)
    layers = sum(info.layers for info in known)
    channels = 3 if any(info.channels == 3 for info in known) else 1
    floats = layers * largest.height * largest.width * channels * 4
    integers = sum(info.layers * info.height * info.width * info.channels * info.itemsize
                   for info in known)
    needed = floats + integers
    available = available_memory()
    if available is not None and needed > available:
        kind = "RGB" if channels == 3 else "grey"
        raise StackError(f"the stack needs about {needed / 1e9:.1f} GB of memory ({layers} "
                         f"{kind} layers of {largest.width}x{largest.height}), but only "
                         f"{available / 1e9:.1f} GB is available")


def _check_sizes(pages: list[np.ndarray], owners: list[Path]) -> None:
    sizes: dict[tuple[int, int], list[str]] = {}
    for page, path in zip(pages, owners):
        sizes.setdefault(page.shape[:2], []).append(path.name)
    if len(sizes) > 1:
        described = "; ".join(
            f"{w}x{h}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
            for (h, w), names in sizes.items()
        )
        raise StackError(f"images differ in size ({described}); use --align to register "
                         "layers of different sizes")


def _match_sizes(pages: list[np.ndarray]) -> list[np.ndarray]:
    height, width = pages[len(pages) // 2].shape[:2]
    return [page if page.shape[:2] == (height, width)
            else cv2.resize(page, (width, height), interpolation=cv2.INTER_CUBIC)
            for page in pages]
