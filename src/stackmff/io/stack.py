"""Load a focus stack: many files or one multi-page TIFF -> float32 ``(L, H, W[, C])``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from stackmff.errors import StackError
from stackmff.io.image import from_float, read_pages, to_float
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

    Args:
        match_sizes: resize layers whose size differs to the middle layer's size (for
            registration, which then corrects what the resize leaves); otherwise differing
            sizes are an error.

    Raises:
        StackError: no images, a single layer, an unreadable file, or layers of different
            sizes (without ``match_sizes``).
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    paths = expand_inputs(list(inputs))
    if not paths:
        raise StackError(f"no images found in {', '.join(map(str, inputs))}")
    pages: list[np.ndarray] = []
    owners: list[Path] = []
    for path in progress(paths, desc="load", total=len(paths)):
        for page in read_pages(path):
            pages.append(page)
            owners.append(path)
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
