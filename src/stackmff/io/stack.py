"""Load a focus stack: many files or one multi-page TIFF -> ``(L, H, W[, C])``, float32 in
[0, 1] or the files' integers; a stack of RAW files developed with one set of settings, and
the colour profile that every layer shares."""

from __future__ import annotations

import os
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from stackmff.errors import StackError
from stackmff.io.colour import ColourSpace, check_profile, describe, profile
from stackmff.io.image import DecodedImage, ImageInfo, probe_image, read_image
from stackmff.io.paths import camera_kind, expand_inputs
from stackmff.io.pixels import from_float, to_float
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
        icc: the ICC profile every layer carries (a developed RAW stack: its space's).
        space: for a developed RAW stack, the colour space of its pixels.
    """

    layers: np.ndarray
    dtype: np.dtype = field(default_factory=lambda: np.dtype(np.uint8))
    paths: list[Path] = field(default_factory=list)
    icc: bytes | None = None
    space: ColourSpace | None = None

    def __len__(self) -> int:
        return int(self.layers.shape[0])

    @property
    def is_colour(self) -> bool:
        return self.layers.ndim == 4

    def to_output(self, image: np.ndarray) -> np.ndarray:
        """Convert a float image of this stack to the stack's own bit depth (an image already
        in it passes through)."""
        return from_float(image, self.dtype)


@dataclass(frozen=True)
class FusionWork:
    """What a fusion method holds beside the loaded layers, for the memory check before any
    decoding: the layers alone can fit while the method's own arrays do not (a stack loaded as
    8-bit integers is a quarter of the float32 copy most methods make of it).

    Attributes:
        float_copy: the method converts the whole stack to float32 (the network and depthmap
            convert a tile or a layer at a time).
    """

    float_copy: bool = True

    def bytes(self, layers: int, height: int, width: int, channels: int) -> int:
        """The float32 copy, and the full-size products: focus map (uint16), confidence and
        fused image (float32 at most)."""
        copy = 4 * layers * height * width * channels if self.float_copy else 0
        return copy + height * width * (2 + 4 + 4 * channels)


def load_stack(inputs: str | Path | Sequence[str | Path], match_sizes: bool = False,
               floats: bool = True, fusing: FusionWork | None = None,
               colour_space: str | None = None, reference: int | None = None) -> Stack:
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
        fusing: the memory of the method the stack is loaded for, counted in the check.
        colour_space: for RAW files, the space they are developed into (default sRGB; see
            :mod:`stackmff.io.colour`).
        reference: the file whose as-shot white balance develops every RAW layer (default:
            the middle one).

    Raises:
        StackError: no images, a single layer, an unreadable file, a stack too big for the
            memory, layers of different sizes (without ``match_sizes``), RAW files mixed with
            other images, or layers whose ICC profiles differ or are damaged.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    paths = expand_inputs(list(inputs))
    if not paths:
        raise StackError(f"no images found in {', '.join(map(str, inputs))}")
    develop = _develop_settings(paths, colour_space, reference)
    infos = [probe_image(path) for path in paths]
    icc = _shared_profile(paths, infos) if develop is None else profile(develop.space.name)
    if not match_sizes:
        _check_declared_sizes(paths, infos)
    _check_memory(infos, floats, fusing)
    expected = sum(1 if info is None else info.layers for info in infos)
    assembly = None if match_sizes else _Assembly(floats, expected)
    pages: list[np.ndarray] = []
    owners: list[Path] = []
    with_alpha: list[str] = []
    decoded_files = _decode_all(paths, develop)
    for path, decoded in progress(zip(paths, decoded_files), desc="load", total=len(paths)):
        if assembly is None:
            pages.extend(decoded.pages)
        else:  # copied into the stack at once: the decoded pages are not all held together
            for page in decoded.pages:
                assembly.add(page)
        owners.extend([path] * len(decoded.pages))
        if decoded.alpha_dropped:
            with_alpha.append(path.name)
        del decoded
    if with_alpha:
        shown = ", ".join(with_alpha[:3]) + (" ..." if len(with_alpha) > 3 else "")
        files = "file" if len(with_alpha) == 1 else "files"
        warnings.warn(f"alpha channel dropped in {len(with_alpha)} {files} ({shown})",
                      stacklevel=2)
    if len(owners) < 2:
        raise StackError(f"a focus stack needs at least 2 images, got {len(owners)} "
                         f"({', '.join(map(str, paths))})")
    space = None if develop is None else develop.space
    if assembly is not None:
        _check_sizes(assembly.sizes, owners)
        return Stack(layers=assembly.layers, dtype=assembly.dtype, paths=owners, icc=icc,
                     space=space)
    assembly = _Assembly(floats, len(pages))
    pages = _match_sizes(pages)
    for i, page in enumerate(pages):
        pages[i] = None  # each page is freed once copied
        assembly.add(page)
    return Stack(layers=assembly.layers, dtype=assembly.dtype, paths=owners, icc=icc,
                 space=space)


def _develop_settings(paths: list[Path], colour_space: str | None, reference: int | None):
    """The develop settings of a stack of RAW files (taken once, from the reference file);
    ``None`` for other images. A stack that mixes RAW files with other images is refused:
    its layers would not share one colour rendering."""
    raw = [p for p in paths if camera_kind(p) == "raw"]
    if raw and len(raw) != len(paths):
        other = [p.name for p in paths if camera_kind(p) != "raw"]
        raise StackError(f"the stack mixes RAW files ({_names([p.name for p in raw])}) with "
                         f"other images ({_names(other)}): fuse them as separate stacks, or "
                         "convert the RAW files first")
    if not raw:
        if colour_space is not None:
            raise StackError("--colour-space applies to stacks of RAW files (it chooses their "
                             "develop); other images keep their own colour space and profile")
        return None
    from stackmff.io.raw import settings_for

    index = len(paths) // 2 if reference is None else reference
    if not 0 <= index < len(paths):
        raise StackError(f"reference layer {index} is out of range for {len(paths)} files")
    return settings_for(paths[index], colour_space or "srgb")


def _names(names: list[str]) -> str:
    return ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")


def _shared_profile(paths: list[Path], infos: list[ImageInfo | None]) -> bytes | None:
    """The ICC profile every layer carries (``None`` when none carries one). A damaged
    profile, or layers whose profiles differ (one without any among those with one too),
    are refused: one output cannot say what two encodings mean."""
    profiles: dict[bytes | None, list[str]] = {}
    for path, info in zip(paths, infos):
        icc = None if info is None else info.icc
        if icc is not None:
            check_profile(icc, str(path))
        profiles.setdefault(icc, []).append(path.name)
    if len(profiles) > 1:
        described = "; ".join(f"{describe(icc)}: {_names(names)}"
                              for icc, names in profiles.items())
        raise StackError(f"the layers carry different ICC profiles ({described}); convert "
                         "them to one colour space first")
    return next(iter(profiles))


class _Assembly:
    """The stack filled page by page as the pages are decoded: grey pages in a colour stack
    become RGB and 8-bit pages in a 16-bit stack are scaled, as the pages come. A page
    that widens the stack (the first colour or 16-bit page) widens the layers already in
    it; pages of another size are only counted, for the error that lists them."""

    def __init__(self, floats: bool, expected: int) -> None:
        self.floats, self.expected = floats, expected
        self.dtype = np.dtype(np.uint8)
        self.sizes: list[tuple[int, int]] = []
        self._array: np.ndarray | None = None  # room for the pages the headers declare
        self._count = 0

    @property
    def layers(self) -> np.ndarray:
        return self._array[:self._count]

    def add(self, page: np.ndarray) -> None:
        self.sizes.append(page.shape[:2])
        if self.sizes[-1] != self.sizes[0]:
            return
        colour = page.ndim == 3 or (self._array is not None and self._array.ndim == 4)
        if page.dtype == np.uint16:
            self.dtype = np.dtype(np.uint16)
        shape = page.shape[:2] + ((3,) if colour else ())
        stored = np.dtype(np.float32 if self.floats else self.dtype)
        if self._array is None:
            self._array = np.empty((max(self.expected, 2),) + shape, stored)
        elif self._array.shape[1:] != shape or self._array.dtype != stored:
            self._array = self._converted(self._array, shape, stored)
        if self._count == len(self._array):  # more pages than the headers declared
            grown = np.empty((2 * self._count,) + shape, stored)
            grown[:self._count] = self._array
            self._array = grown
        self._array[self._count] = self._page(page, colour)
        self._count += 1

    def _page(self, page: np.ndarray, colour: bool) -> np.ndarray:
        if self.floats:
            page = to_float(page)
        elif page.dtype != self.dtype:  # 8-bit in a 16-bit stack: the same scaling as to_float's
            page = page.astype(self.dtype) * self.dtype.type(WIDEN)
        return page[..., None] if colour and page.ndim == 2 else page

    def _converted(self, layers: np.ndarray, shape: tuple, stored) -> np.ndarray:
        """The layers so far, made colour and/or 16-bit as a new page requires."""
        wider = np.empty((len(layers),) + shape, stored)
        for i in range(self._count):
            wider[i] = self._page(layers[i], len(shape) == 3)
        return wider


def _decode_all(paths: list[Path], develop=None) -> Iterator[DecodedImage]:
    """Every file decoded, in order, by as many threads as there are cores, a few files
    ahead of the caller at most (so that decoded pages do not pile up)."""
    workers = min(len(paths), os.cpu_count() or 1)
    if workers <= 1:
        yield from (read_image(path, develop) for path in paths)
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="stackmff-load")
    try:
        ahead = deque(pool.submit(read_image, path, develop) for path in paths[:2 * workers])
        for path in paths[2 * workers:] + [None] * len(ahead):
            decoded = ahead.popleft().result()
            if path is not None:
                ahead.append(pool.submit(read_image, path, develop))
            yield decoded
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


def _check_memory(infos: list[ImageInfo | None], floats: bool = True,
                  fusing: FusionWork | None = None) -> None:
    """Refuse a stack whose declared size needs more memory than is available.

    Counts the layers (float32, or integers), the decoded integer pages and, for a fusion,
    what the method holds beside them (:class:`FusionWork`); files without a readable header
    (formats only OpenCV knows) are not counted.
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
    if fusing is not None:
        needed += fusing.bytes(layers, largest.height, largest.width, channels)
    available = available_memory()
    if available is not None and needed > available:
        kind = "RGB" if channels == 3 else "grey"
        raise StackError(f"the stack needs about {needed / 1e9:.1f} GB of memory ({layers} "
                         f"{kind} layers of {largest.width}x{largest.height}), but only "
                         f"{available / 1e9:.1f} GB is available")


def _check_declared_sizes(paths: list[Path], infos: list[ImageInfo | None]) -> None:
    """Refuse layers whose headers declare different sizes before any is decoded (a huge one
    among small ones would be decoded first, only to be refused). A size and its transpose
    count as one: an orientation tag may turn the page when it is decoded."""
    known = [(p, i) for p, i in zip(paths, infos) if i is not None]
    if len({tuple(sorted((i.height, i.width))) for _, i in known}) > 1:
        _check_sizes([(i.height, i.width) for _, i in known], [p for p, _ in known])


def _check_sizes(sizes: list[tuple[int, int]], owners: list[Path]) -> None:
    by_size: dict[tuple[int, int], list[str]] = {}
    for size, path in zip(sizes, owners):
        by_size.setdefault(size, []).append(path.name)
    if len(by_size) > 1:
        described = "; ".join(
            f"{w}x{h}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
            for (h, w), names in by_size.items()
        )
        raise StackError(f"images differ in size ({described}); use --align to register "
                         "layers of different sizes")


def _match_sizes(pages: list[np.ndarray]) -> list[np.ndarray]:
    height, width = pages[len(pages) // 2].shape[:2]
    return [page if page.shape[:2] == (height, width)
            else cv2.resize(page, (width, height), interpolation=cv2.INTER_CUBIC)
            for page in pages]
