"""Read and write single images at full bit depth; writes are atomic.

OpenCV decodes pixels (it keeps 16 bit, unlike Pillow for 16-bit colour PNG), tifffile reads
multi-page TIFF z-stacks, and Pillow supplies the EXIF orientation.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
import tifffile
from PIL import Image

from stackmff.errors import StackError
from stackmff.io.atomic import write_files_atomically
from stackmff.io.paths import TIFF_SUFFIXES

SUPPORTED_DTYPES = (np.uint8, np.uint16)


def read_pages(path: str | Path) -> list[np.ndarray]:
    """Read an image file as a list of pages, each ``(H, W)`` or ``(H, W, 3)`` RGB.

    A multi-page TIFF gives one page per layer; every other file gives one page. Alpha is
    dropped with a warning, EXIF orientation is applied, and the integer dtype (uint8 or
    uint16) is kept.

    Raises:
        StackError: if the file cannot be read or decoded.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StackError(f"cannot read {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() in TIFF_SUFFIXES:
        pages = _decode_tiff(data, path)
    else:
        pages = [_decode_other(data, path)]
    return [_normalise_page(p, path) for p in pages]


def _decode_tiff(data: bytes, path: Path) -> list[np.ndarray]:
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            series = tif.series[0]
            array = series.asarray()
            axes = series.axes
    except Exception as exc:  # tifffile raises many types for corrupt files
        # compressions tifffile cannot decode without extra codecs (LZW, JPEG): OpenCV can
        ok, pages = cv2.imdecodemulti(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if not ok or not pages:
            raise StackError(f"cannot decode {path} as TIFF: {exc}") from None
        return [_bgr_to_rgb(page) for page in pages]
    # Keep the last two spatial axes (+ colour); fold every other axis into pages.
    spatial = "YXS" if axes.endswith("S") else "YX"
    if not axes.endswith(spatial):
        raise StackError(f"unsupported TIFF layout {axes!r} in {path}")
    pages = array.reshape((-1,) + array.shape[-len(spatial):])
    return list(pages)


def _decode_other(data: bytes, path: Path) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise StackError(f"cannot decode {path}: not an image or corrupt")
    return _apply_exif_orientation(_bgr_to_rgb(image), data)


def _bgr_to_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def _apply_exif_orientation(image: np.ndarray, data: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as pil:
            orientation = pil.getexif().get(0x0112, 1)
    except Exception:
        return image
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


def _normalise_page(page: np.ndarray, path: Path) -> np.ndarray:
    if page.dtype not in SUPPORTED_DTYPES:
        raise StackError(f"{path}: unsupported pixel type {page.dtype} (need 8- or 16-bit)")
    if page.ndim == 3 and page.shape[2] == 1:
        page = page[:, :, 0]
    if page.ndim == 3 and page.shape[2] in (2, 4):
        warnings.warn(f"{path.name}: alpha channel dropped", stacklevel=4)
        page = page[:, :, :-1]
        if page.shape[2] == 1:
            page = page[:, :, 0]
    if page.ndim not in (2, 3) or (page.ndim == 3 and page.shape[2] != 3):
        raise StackError(f"{path}: unsupported image shape {page.shape}")
    return page


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8/uint16 -> float32 in [0, 1]."""
    return image.astype(np.float32) / np.float32(np.iinfo(image.dtype).max)


def from_float(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float in [0, 1] -> uint8/uint16, rounded and clipped."""
    top = np.iinfo(dtype).max
    return np.clip(np.rint(np.asarray(image, np.float32) * top), 0, top).astype(dtype)


def encode_image(image: np.ndarray, path: str | Path) -> bytes:
    """Encode an integer RGB/grey image for the file type given by ``path``'s suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if image.dtype not in SUPPORTED_DTYPES:
        raise StackError(f"cannot write pixel type {image.dtype}")
    if suffix in TIFF_SUFFIXES:
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, image, photometric="rgb" if image.ndim == 3 else "minisblack",
                         compression="zlib")
        return buffer.getvalue()
    if suffix in (".jpg", ".jpeg", ".jpe", ".bmp", ".webp") and image.dtype == np.uint16:
        warnings.warn(f"{suffix} holds 8 bits only: {path.name} is written as 8-bit; "
                      "use .png or .tif to keep 16 bit", stacklevel=3)
        image = (image.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix in (".jpg", ".jpeg", ".jpe") else []
    try:
        ok, encoded = cv2.imencode(suffix, bgr, params)
    except cv2.error:
        ok = False
    if not ok:
        raise StackError(f"cannot write {path}: unsupported file type {suffix!r}")
    return encoded.tobytes()


def write_image(image: np.ndarray, path: str | Path) -> None:
    """Atomically write one integer image (uint8/uint16) to ``path``."""
    write_files_atomically({Path(path): encode_image(image, path)})
