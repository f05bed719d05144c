"""TIFF files as focus stacks: every series, axes put in (layer, Y, X, sample) order, damage refused.

tifffile reports a broken page chain only through its log and then serves the pages that
survive, so its error records are collected here and turned into an error; its log never
reaches stderr while a file is read. Compressions tifffile cannot decode without extra
codecs (LZW, JPEG) are decoded by OpenCV, which applies the Orientation tag itself.
"""

from __future__ import annotations

import io
import logging
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile

from stackmff.errors import StackError

TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
STACK_AXES = frozenset("ZTQI")  # depth, time, unknown, image sequence: folded into layers
_ORIENTATION = 274


@dataclass(frozen=True)
class TiffLayout:
    """How one series becomes layers: the transpose to ``(stack..., Y, X, samples...)``."""

    order: tuple[int, ...]
    layers: int
    height: int
    width: int
    samples: int


class _ErrorLog(logging.Handler):
    """Collects this thread's records from tifffile's logger (errors, unless told)."""

    def __init__(self, level: int = logging.ERROR) -> None:
        super().__init__(level)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread in (self.thread, None):
            self.messages.append(record.getMessage())


@contextmanager
def tifffile_errors(level: int = logging.ERROR) -> Iterator[list[str]]:
    """Collect tifffile's error records (or those of ``level`` and above: its warnings say
    where it read a file otherwise than described); while attached, its log does not reach
    stderr."""
    handler = _ErrorLog(level)
    logger = logging.getLogger("tifffile")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


@contextmanager
def tiff_errors(path: Path, what: str = "as TIFF") -> Iterator[list[str]]:
    """Read ``path`` with tifffile: its error records collected (:func:`tifffile_errors`, for
    :func:`raise_logged`), and whatever it raises turned into one line naming the file.

    Args:
        what: how the message names the reading, ``cannot decode <path> <what>: ...``; empty
            for the pages of a file already opened.

    Raises:
        StackError: for any error in the block; a :class:`StackError` passes unchanged.
    """
    try:
        with tifffile_errors() as errors:
            yield errors
    except StackError:
        raise
    except Exception as exc:  # tifffile raises many types for damaged files
        named = f"{path} {what}" if what else str(path)
        raise StackError(f"cannot decode {named}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    """tifffile's message on one line, or what it means where it says nothing useful (an empty
    message; a page it could not find, reported as an attribute of ``None``)."""
    if isinstance(exc, AttributeError) and "NoneType" in str(exc):
        return "a page is missing or damaged (tifffile could not read it)"
    return one_line(exc) or f"damaged file ({type(exc).__name__} without a message)"


def layout_of(series: tifffile.TiffPageSeries, path: Path) -> TiffLayout:
    """Place the sample/channel axis last and fold the stack-like axes into layers.

    Raises:
        StackError: for axes that are neither stack, spatial nor one colour axis.
    """
    axes, shape = series.axes, tuple(series.shape)
    colour = [i for i, a in enumerate(axes) if a in "SC" and shape[i] > 1]
    other = [a for a, n in zip(axes, shape) if a not in STACK_AXES | set("SCYX") and n > 1]
    samples = shape[colour[0]] if colour else 1
    supported = ("Y" in axes and "X" in axes and not other and len(colour) <= 1
                 and (not colour or (axes[colour[0]] == "S" and samples <= 4) or samples == 3))
    if not supported:
        raise StackError(f"cannot decode {path}: unsupported TIFF layout {axes!r} of shape "
                         f"{shape} (readable: Z/T/Q/I stack axes, Y, X and one colour axis, "
                         "S of 1-4 samples or C of 3)")
    stack = [i for i, a in enumerate(axes) if a in STACK_AXES]
    tail = [i for i, a in enumerate(axes) if a not in STACK_AXES | {"Y", "X"}]
    order = (*stack, axes.index("Y"), axes.index("X"), *tail)
    return TiffLayout(order, math.prod(shape[i] for i in stack), shape[axes.index("Y")],
                      shape[axes.index("X")], samples)


def layouts_of(tif: tifffile.TiffFile, path: Path) -> list[TiffLayout]:
    """One layout per series; the series must share one page size.

    Raises:
        StackError: no images, an unsupported layout, or pages of different sizes.
    """
    layouts = [layout_of(series, path) for series in tif.series]
    if not layouts:
        raise StackError(f"cannot decode {path}: the TIFF holds no images")
    sizes = sorted({(layout.width, layout.height) for layout in layouts})
    if len(sizes) > 1:
        shown = ", ".join(f"{w}x{h}" for w, h in sizes)
        raise StackError(f"cannot decode {path}: its TIFF pages differ in size ({shown}); "
                         "a stack in one TIFF needs pages of one size")
    return layouts


def decode_tiff(data: bytes, path: Path) -> list[np.ndarray]:
    """Decode every page of every series as ``(H, W)`` or ``(H, W, samples)`` RGB pages.

    Raises:
        StackError: a damaged or truncated file, or a layout that is not a stack.
    """
    with tiff_errors(path) as errors, tifffile.TiffFile(io.BytesIO(data)) as tif:
        page_count = len(tif.pages)  # walks the whole page chain
        layouts = layouts_of(tif, path)
        check_data_in_file(tif, len(data), path)
        raise_logged(errors, path)
        if not _decodable(tif):
            return _decode_with_opencv(data, page_count, path)
        pages = []
        for series, layout in zip(tif.series, layouts):
            array = series.asarray().transpose(layout.order)
            array = array.reshape((layout.layers, layout.height, layout.width, layout.samples))
            orientation = series.keyframe.tags.valueof(_ORIENTATION, 1)
            pages.extend(orient(page, orientation) for page in array)
        raise_logged(errors, path)
    return pages


def one_line(message: object, limit: int = 160) -> str:
    """A library's message squeezed onto one line, for a one-line error."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def orient(image: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF/TIFF orientation (1-8) so the image is upright as displayed."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1],
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(image)) if op else image


def check_data_in_file(tif: tifffile.TiffFile, size: int, path: Path) -> None:
    """Refuse a file whose pages point past its ``size`` bytes (a truncated TIFF)."""
    for index, page in enumerate(tif.pages):
        ends = [offset + count for offset, count in zip(page.dataoffsets, page.databytecounts)
                if count]
        if ends and max(ends) > size:
            raise StackError(f"cannot decode {path}: truncated TIFF (page {index + 1} ends at "
                             f"byte {max(ends)}, the file has {size})")


def raise_logged(errors: list[str], path: Path) -> None:
    """Raise the first error tifffile logged while reading ``path`` (a broken page chain)."""
    if errors:
        message = errors[0].split("> ", 1)[-1]  # drop tifffile's "<tifffile.TiffPages @8>"
        raise StackError(f"cannot decode {path}: damaged or truncated TIFF "
                         f"({one_line(message)})")


def _decodable(tif: tifffile.TiffFile) -> bool:
    compressions = {series.keyframe.compression for series in tif.series}
    return all(c in tifffile.TIFF.DECOMPRESSORS for c in compressions)


def _decode_with_opencv(data: bytes, page_count: int, path: Path) -> list[np.ndarray]:
    try:
        ok, pages = cv2.imdecodemulti(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        ok, pages = False, []
    if not ok or len(pages) != page_count:
        raise StackError(f"cannot decode {path}: a TIFF compression that could not be decoded "
                         f"(read {len(pages or [])} of {page_count} pages)")
    return [cv2.cvtColor(p, cv2.COLOR_BGRA2RGBA if p.shape[2] == 4 else cv2.COLOR_BGR2RGB)
            if p.ndim == 3 and p.shape[2] in (3, 4) else p for p in pages]
