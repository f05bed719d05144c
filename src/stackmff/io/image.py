"""Read and write single images at full bit depth; writes are atomic.

OpenCV decodes pixels (it keeps 16 bit, unlike Pillow for 16-bit colour PNG), tifffile reads
multi-page TIFF z-stacks (see :mod:`stackmff.io.tiff`), Pillow reads headers, the embedded ICC
profile and the EXIF orientation; camera RAW files are developed by LibRaw
(:mod:`stackmff.io.raw`) and HEIF images decoded by libheif (:mod:`stackmff.io.heif`), each
imported only when such a file is read. An output gets the input's ICC profile beside its
pixels, since the profile is what the pixel values mean. Headers are read before any pixels, so a file that declares an absurd size is
refused before it is decoded, and PNG chunks are checked first so that a damaged file gives
our one-line error instead of the decoder's messages on stderr.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
import tifffile
from PIL import Image

from stackmff.errors import StackError
from stackmff.io.atomic import write_files_atomically
from stackmff.io.paths import TIFF_SUFFIXES, camera_kind
from stackmff.io.tiff import (
    TIFF_MAGIC,
    decode_tiff,
    layouts_of,
    orient,
    tiff_errors,
    tifffile_errors,
)

SUPPORTED_DTYPES = (np.uint8, np.uint16)
# Pixels one image may declare: OpenCV's own default limit, refused here with a clearer error.
MAX_PIXELS = 1 << 30
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


def _software() -> str:
    try:
        from importlib.metadata import version

        return f"stackmff {version('stackmff')}"
    except Exception:  # not installed (run from the sources)
        return "stackmff"


# the marker of the fusion's products in PNG, TIFF and JPEG (PNG Software text chunk, TIFF
# Software tag, JPEG comment), so that a result left among the layers is recognised as ours
SOFTWARE = _software()
_COLOUR_MODES = frozenset({"RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "P",
                           "PA"})


@dataclass(frozen=True)
class ImageInfo:
    """What a file's header declares, read without decoding its pixels.

    Attributes:
        layers: pages that become layers (more than one for a TIFF z-stack).
        height, width: the size of each page as stored.
        channels: 3 for colour, 1 for grey (alpha is not counted: it is dropped).
        itemsize: bytes per decoded sample (1 or 2).
        icc: the embedded ICC profile, if any.
    """

    layers: int
    height: int
    width: int
    channels: int
    itemsize: int
    icc: bytes | None = None


@dataclass
class DecodedImage:
    """The pages of one file, and whether an alpha channel was dropped from them."""

    pages: list[np.ndarray]
    alpha_dropped: bool = False


def probe_image(path: str | Path) -> ImageInfo | None:
    """Read what an image file declares (size, pages, channels) without decoding pixels.

    Returns:
        The declared layout, or ``None`` for a format only OpenCV knows (no header reader).

    Raises:
        StackError: the file cannot be read, is empty, has a damaged header, or declares more
            than :data:`MAX_PIXELS` pixels per image.
    """
    path = Path(path)
    kind = camera_kind(path)
    if kind is not None:
        _check_readable(path)
        info = _probe_camera(path, kind)
        if info.height * info.width > MAX_PIXELS:
            raise StackError(f"{path} declares {info.width}x{info.height} pixels, more than "
                             f"the limit of {MAX_PIXELS:,} pixels per image")
        return info
    try:
        with path.open("rb") as handle:
            head = handle.read(32)
            handle.seek(0)
            if not head:
                raise StackError(f"cannot decode {path}: the file is empty")
            info = (_probe_tiff(handle, path) if head.startswith(TIFF_MAGIC)
                    else _probe_other(handle, head, path))
    except OSError as exc:
        raise StackError(f"cannot read {path}: {exc.strerror or exc}") from None
    if info is not None and info.height * info.width > MAX_PIXELS:
        raise StackError(f"{path} declares {info.width}x{info.height} pixels, more than the "
                         f"limit of {MAX_PIXELS:,} pixels per image")
    return info


def _check_readable(path: Path) -> None:
    """A camera file exists, can be opened and is not empty (before its decoder sees it)."""
    try:
        if path.stat().st_size == 0:
            raise StackError(f"cannot decode {path}: the file is empty")
        with path.open("rb"):
            pass
    except OSError as exc:
        raise StackError(f"cannot read {path}: {exc.strerror or exc}") from None


def _probe_camera(path: Path, kind: str) -> ImageInfo:
    if kind == "raw":
        from stackmff.io.raw import probe_raw

        height, width = probe_raw(path)
        return ImageInfo(1, height, width, 3, 2)
    from stackmff.io.heif import probe_heif

    height, width, depth, icc = probe_heif(path)
    return ImageInfo(1, height, width, 3, 1 if depth <= 8 else 2, icc)


def read_pages(path: str | Path) -> list[np.ndarray]:
    """Read an image file as a list of pages, each ``(H, W)`` or ``(H, W, 3)`` RGB.

    A multi-page TIFF gives one page per layer; every other file gives one page. Alpha is
    dropped with a warning, EXIF/TIFF orientation is applied, and the integer dtype (uint8 or
    uint16) is kept.

    Raises:
        StackError: if the file cannot be read or decoded.
    """
    decoded = read_image(path)
    if decoded.alpha_dropped:
        warnings.warn(f"{Path(path).name}: alpha channel dropped", stacklevel=2)
    return decoded.pages


def read_image(path: str | Path, develop=None) -> DecodedImage:
    """Like :func:`read_pages`, but report a dropped alpha channel instead of warning.

    Args:
        develop: for a RAW file, the stack's :class:`stackmff.io.raw.DevelopSettings`
            (default: the file's own, in sRGB).

    Raises:
        StackError: if the file cannot be read, declares too many pixels, or cannot be decoded.
    """
    path = Path(path)
    probe_image(path)
    kind = camera_kind(path)
    if kind == "raw":
        from stackmff.io.raw import develop as develop_raw
        from stackmff.io.raw import settings_for

        return DecodedImage([develop_raw(path, develop or settings_for(path, "srgb"))])
    if kind == "heif":
        from stackmff.io.heif import read_heif

        return DecodedImage([read_heif(path)])
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StackError(f"cannot read {path}: {exc.strerror or exc}") from None
    if data.startswith(TIFF_MAGIC):
        pages = decode_tiff(data, path)
    else:
        pages = [_decode_other(data, path)]
    normalised = [_normalise_page(p, path) for p in pages]
    return DecodedImage([page for page, _ in normalised], any(alpha for _, alpha in normalised))


def _probe_tiff(handle: BinaryIO, path: Path) -> ImageInfo:
    with tiff_errors(path), tifffile.TiffFile(handle) as tif:
        layouts = layouts_of(tif, path)
        itemsize = max(series.dtype.itemsize for series in tif.series)
        icc = tif.pages.first.tags.valueof(34675)  # InterColorProfile
    first = layouts[0]
    return ImageInfo(sum(layout.layers for layout in layouts), first.height, first.width,
                     3 if any(layout.samples >= 3 for layout in layouts) else 1, itemsize,
                     bytes(icc) if icc else None)


def _probe_other(handle: BinaryIO, head: bytes, path: Path) -> ImageInfo | None:
    image = _pillow_header(handle)
    if image is None:
        if head.startswith((PNG_MAGIC, JPEG_MAGIC)):
            raise StackError(f"cannot decode {path}: damaged image header")
        return None
    width, height = image.size
    sixteen = image.mode.startswith("I") or (head.startswith(PNG_MAGIC) and head[24:25] == b"\x10")
    icc = image.info.get("icc_profile") or None
    return ImageInfo(1, height, width, 3 if image.mode in _COLOUR_MODES else 1,
                     2 if sixteen else 1, icc)


def _pillow_header(handle: BinaryIO) -> Image.Image | None:
    """Open a header with Pillow's format plugins, as ``Image.open`` does, but without its
    decompression-bomb limit: the size limits here are our own and name the file."""
    Image.init()
    prefix = handle.read(16)
    for name in Image.ID:
        factory, accept = Image.OPEN[name]
        try:
            accepted = accept(prefix) if accept else True
            if accepted and not isinstance(accepted, str):
                handle.seek(0)
                return factory(handle, "")
        except Exception:  # a plugin that does not recognise the file raises; try the next
            continue
    return None


def _decode_other(data: bytes, path: Path) -> np.ndarray:
    # PNG: the chunk walk also finds eXIf (asking Pillow would decode the whole image)
    exif = _png_exif(data, path) if data.startswith(PNG_MAGIC) else _file_exif(data)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        image = None
    if image is None:
        raise StackError(f"cannot decode {path}: not an image or corrupt")
    return orient(_bgr_to_rgb(image), _orientation(exif))


def _png_exif(data: bytes, path: Path) -> bytes | None:
    """Walk the chunks (lengths and CRCs), refusing a truncated or damaged PNG before libpng
    prints about it; returns the eXIf chunk's payload, if any."""
    view = memoryview(data)
    position, kinds, exif = len(PNG_MAGIC), [], None
    while not kinds or kinds[-1] != b"IEND":
        if position + 12 > len(data):
            raise StackError(f"cannot decode {path}: truncated PNG")
        length, kind = struct.unpack(">I4s", view[position:position + 8])
        end = position + 12 + length
        if end > len(data):
            raise StackError(f"cannot decode {path}: truncated PNG")
        (crc,) = struct.unpack(">I", view[end - 4:end])
        if zlib.crc32(view[position + 4:end - 4]) != crc:
            raise StackError(f"cannot decode {path}: damaged PNG (CRC error in a "
                             f"{kind.decode('latin-1')!r} chunk)")
        if kind == b"eXIf":
            exif = bytes(view[position + 8:end - 4])
        kinds.append(kind)
        position = end
    if kinds[0] != b"IHDR" or b"IDAT" not in kinds:
        raise StackError(f"cannot decode {path}: damaged PNG (missing header or image data)")
    return exif


def _bgr_to_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def _file_exif(data: bytes) -> Image.Exif | None:
    try:
        image = _pillow_header(io.BytesIO(data))
        return image.getexif() if image is not None else None
    except Exception:  # a damaged EXIF block: show the image as stored
        return None


def _orientation(exif: bytes | Image.Exif | None) -> int:
    """The EXIF orientation (1-8) from a parsed block or a raw eXIf payload; 1 if none."""
    try:
        if isinstance(exif, bytes):
            payload, exif = exif, Image.Exif()
            exif.load(payload)
        return int(exif.get(0x0112, 1)) if exif is not None else 1
    except Exception:  # a damaged EXIF block: show the image as stored
        return 1


def _normalise_page(page: np.ndarray, path: Path) -> tuple[np.ndarray, bool]:
    """Check the dtype, drop alpha; returns the page and whether alpha was dropped."""
    if page.dtype not in SUPPORTED_DTYPES:
        raise StackError(f"{path}: unsupported pixel type {page.dtype} (need 8- or 16-bit)")
    alpha = page.ndim == 3 and page.shape[2] in (2, 4)
    if alpha:
        page = page[:, :, :-1]
    if page.ndim == 3 and page.shape[2] == 1:
        page = page[:, :, 0]
    if page.ndim not in (2, 3) or (page.ndim == 3 and page.shape[2] != 3):
        raise StackError(f"{path}: unsupported image shape {page.shape}")
    return page, alpha


def encode_image(image: np.ndarray, path: str | Path, software: str | None = None,
                 icc: bytes | None = None) -> bytes:
    """Encode an integer RGB/grey image for the file type given by ``path``'s suffix;
    ``software`` (e.g. :data:`SOFTWARE`, for the fusion's products) is recorded in a PNG, TIFF
    or JPEG, and ``icc`` (the profile that says what the values mean) embedded in a PNG
    (iCCP), TIFF (InterColorProfile) or JPEG (APP2), without changing a pixel."""
    path = Path(path)
    suffix = path.suffix.lower()
    if image.dtype not in SUPPORTED_DTYPES:
        raise StackError(f"cannot write pixel type {image.dtype}")
    if suffix in TIFF_SUFFIXES:
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, image, photometric="rgb" if image.ndim == 3 else "minisblack",
                         compression="zlib", **({"software": software} if software else {}),
                         **({"iccprofile": icc} if icc else {}))
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
    data = _marked(encoded.tobytes(), software) if software else encoded.tobytes()
    if icc and not data.startswith((PNG_MAGIC, JPEG_MAGIC)):
        warnings.warn(f"{suffix} keeps no ICC profile: {path.name} is written without one; "
                      "use .tif, .png or .jpg to keep the colour space", stacklevel=3)
    return _with_profile(data, icc) if icc else data


def _with_profile(data: bytes, icc: bytes) -> bytes:
    """``data`` with the ICC profile ``icc``: a PNG iCCP chunk after the header, or JPEG APP2
    segments (ICC.1 Annex B: at most 65,519 bytes each, numbered) after the leading
    APP0/APP1/comment segments. The pixels are untouched."""
    if data.startswith(PNG_MAGIC):
        body = b"iCCP" + b"ICC profile\0\0" + zlib.compress(icc, 9)
        chunk = (struct.pack(">I", len(body) - 4) + body
                 + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF))
        end = len(PNG_MAGIC) + 25
        return data[:end] + chunk + data[end:]
    pieces = [icc[i:i + 65519] for i in range(0, len(icc), 65519)]
    if len(pieces) > 255:
        raise StackError(f"an ICC profile of {len(icc):,} bytes does not fit in a JPEG")
    segments = b"".join(
        b"\xff\xe2" + struct.pack(">H", 2 + 14 + len(piece)) + b"ICC_PROFILE\0"
        + bytes([k + 1, len(pieces)]) + piece for k, piece in enumerate(pieces))
    position = 2
    while data[position:position + 1] == b"\xff" and data[position + 1] in (0xE0, 0xE1, 0xFE):
        position += 2 + struct.unpack(">H", data[position + 2:position + 4])[0]
    return data[:position] + segments + data[position:]


def _marked(data: bytes, software: str) -> bytes:
    """``data`` with ``software`` recorded (a PNG text chunk after the header, a JPEG comment
    after the start marker); the pixels are untouched, other formats unchanged."""
    marker = software.encode("latin-1")
    if data.startswith(PNG_MAGIC):
        text = b"tEXt" + b"Software\0" + marker
        chunk = (struct.pack(">I", len(text) - 4) + text
                 + struct.pack(">I", zlib.crc32(text) & 0xFFFFFFFF))
        end = len(PNG_MAGIC) + 25  # the IHDR chunk: length, type, 13 bytes, CRC
        return data[:end] + chunk + data[end:]
    if data.startswith(JPEG_MAGIC):
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(marker) + 2) + marker + data[2:]
    return data


def is_own_output(path: Path) -> bool:
    """Whether an image file carries the marker we write (see :data:`SOFTWARE`): a result
    left among the layers it was fused from must not become one of them."""
    try:
        with Path(path).open("rb") as handle:
            head = handle.read(256)
        if head.startswith(TIFF_MAGIC):
            with tifffile_errors(), tifffile.TiffFile(path) as tif:
                software = tif.pages.first.tags.valueof("Software") or ""
            return str(software).startswith("stackmff")
    except Exception:  # unreadable: the decoder reports it
        return False
    if head.startswith(PNG_MAGIC):
        if b"tEXtSoftware\0stackmff" in head:
            return True
    elif not head.startswith(JPEG_MAGIC):
        return False
    elif head[2:4] == b"\xff\xfe" and b"stackmff" in head[:64]:
        return True
    return _marked_in_header(Path(path))


def _marked_in_header(path: Path) -> bool:
    """The marker further in (a PNG's text chunk or a JPEG's comment after the metadata
    written with it, or the EXIF Software tag)."""
    try:
        with Path(path).open("rb") as handle:
            image = _pillow_header(handle)
            if image is None:
                return False
            info = image.info
            marks = [info.get("Software", ""), info.get("comment", b"")]
            if "exif" in info:
                marks.append(image.getexif().get(0x0131, ""))
    except Exception:  # unreadable: the decoder reports it
        return False
    return any((m.decode("latin-1") if isinstance(m, bytes) else str(m)).startswith("stackmff")
               for m in marks)


def write_image(image: np.ndarray, path: str | Path) -> None:
    """Atomically write one integer image (uint8/uint16) to ``path``."""
    write_files_atomically({Path(path): encode_image(image, path)})
