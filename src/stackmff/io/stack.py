"""Load a focus stack: many files or one multi-page TIFF -> ``(L, H, W[, C])``, float32 in
[0, 1] or the files' integers."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from stackmff.errors import StackError
from stackmff.io.image import (
    DecodedImage,
    ImageInfo,
    from_float,
    probe_image,
    read_image,
    to_float,
)
from stackmff.io.paths import expand_inputs
from stackmff.progress import progress

WIDEN = 257  # 8-bit values in a 16-bit stack: 65535 / 255


@dataclass
class Stack:
    """A loaded focus stack.

    Attributes:
        layers: ``(L, H, W)`` grey or ``(L, H, W, 3)`` RGB, float32 in [0, 1]; or, loaded
            with ``floats=False``, the integer values in ``dtype``.
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
        """Convert a float image of this stack to the stack's own bit depth (an image already
        in it passes through)."""
        return from_float(image, self.dtype)


def load_stack(inputs: str | Path | Sequence[str | Path], match_sizes: bool = False,
               floats: bool = True) -> Stack:
    """Load a focus stack from a folder, a glob, a list of files, or a multi-page TIFF.

    Grey layers in a colour stack are promoted to RGB; 8-bit layers in a 16-bit stack are
    scaled, and the stack keeps the widest bit depth.

    Every header is read first: a stack whose declared size would not fit in the available
    memory is refused before any pixels are decoded. The files are then decoded in parallel
    threads (the decoders release the GIL). Alpha channels are dropped with one warning for
    the whole stack.

    Args:
        match_sizes: resize layers whose size differs to the middle layer's size (for
            registration, which then corrects what the resize leaves); otherwise differing
            sizes are an error.
        floats: ``False`` keeps the files' integer values (``Stack.dtype``): a quarter of
            the memory of float32 for 8-bit files; every method takes such a stack.

    Raises:
        StackError: no images, a single layer, an unreadable file, a stack too big for the
            memory, or layers of different sizes (without ``match_sizes``).
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    paths = expand_inputs(list(inputs))
    if not paths:
        raise StackError(f"no images found in {', '.join(map(str, inputs))}")
    _check_memory([probe_image(path) for path in paths], floats)
    pages: list[np.ndarray] = []
    owners: list[Path] = []
    with_alpha: list[str] = []
    for path, decoded in progress(zip(paths, _decode_all(paths)), desc="load", total=len(paths)):
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
    layers = np.empty(shape, np.float32 if floats else dtype)
    for i, page in enumerate(pages):
        pages[i] = None  # each decoded page is freed once copied
        if floats:
            page = to_float(page)
        elif page.dtype != dtype:  # 8-bit in a 16-bit stack: the same scaling as to_float's
            page = page.astype(dtype) * dtype.type(WIDEN)
        layers[i] = page[..., None] if colour and page.ndim == 2 else page
    return Stack(layers=layers, dtype=dtype, paths=owners)


def _decode_all(paths: list[Path]) -> Iterator[DecodedImage]:
    """Every file decoded, in order, by as many threads as there are cores."""
    workers = min(len(paths), os.cpu_count() or 1)
    if workers <= 1:
        yield from map(read_image, paths)
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="stackmff-load")
    try:
        yield from pool.map(read_image, paths)
    finally:  # a file that fails stops the decoding of those not started yet
        pool.shutdown(wait=True, cancel_futures=True)


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


def _check_memory(infos: list[ImageInfo | None], floats: bool = True) -> None:
    """Refuse a stack whose declared size needs more memory than is available.

    Counts the layers (float32, or integers) and the decoded integer pages; files without a
    readable header (formats only OpenCV knows) are not counted.
    """
    known = [info for info in infos if info is not None]
    if not known:
        return
    largest = max(known, key=lambda info: info.height * info.width)
    layers = sum(info.layers for info in known)
    channels = 3 if any(info.channels == 3 for info in known) else 1
    itemsize = 4 if floats else max(info.itemsize for info in known)
    assembled = layers * largest.height * largest.width * channels * itemsize
    integers = sum(info.layers * info.height * info.width * info.channels * info.itemsize
                   for info in known)
    needed = assembled + integers
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
