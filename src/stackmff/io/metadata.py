"""A photograph's metadata (EXIF, XMP, IPTC) carried from one source layer into the fused
image, with the tags that would lie corrected and the fusion recorded in XMP.

Exiv2 (pyexiv2, the ``metadata`` extra) reads and writes it: the source's metadata is copied
as Exiv2 encodes it (values unchanged, never re-typed from text), first into a blank carrier
where what does not describe the fused image is removed, then into the output. Removed: the
maker notes (their offsets point into the original file), the thumbnail (one frame), and
every IFD0 tag but those that describe the photograph (a RAW file's sensor, CFA and DNG tags
would make a TIFF output lie about its own pixels). Corrected: the orientation (the pixels are
upright), the size, the software. Kept: the dates, the camera, lens, exposure and GPS.

A layer that carries no metadata costs nothing: Pillow's header reader says so without
Exiv2, which is imported only when there is something to carry. Metadata that cannot be read
or kept is a warning, never a failure: the image is written without it.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from stackmff.io.paths import camera_kind

INSTALL = 'pip install "stackmff[metadata]"'
NAMESPACE, PREFIX = "urn:stackmff:fusion:1.0/", "stackmff"
# the IFD0 tags that describe the photograph rather than the file's pixels
IMAGE_TAGS = frozenset({"Make", "Model", "Artist", "Copyright", "ImageDescription", "DateTime",
                        "XResolution", "YResolution", "ResolutionUnit", "HostComputer",
                        "ExifTag", "GPSTag", "Software", "Orientation"})
KEPT_GROUPS = frozenset({"Photo", "GPSInfo", "Iop"})
# JPEG keeps EXIF in one APP1 segment and XMP in another: 65,535 bytes less the headers
JPEG_EXIF_LIMIT, JPEG_XMP_LIMIT = 65535 - 2 - 6, 65535 - 2 - 29
JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe")
_DISTANCE_KEYS = ("Exif.Photo.SubjectDistance", "Xmp.aux.ApproximateFocusDistance")


@dataclass(frozen=True)
class FusionRecord:
    """What the fused image records about how it was made.

    Attributes:
        source: the layer whose metadata is carried.
        method: the fusion method; layers: how many layers were fused.
        files: every layer's file (names are recorded, and focus distances read from them).
        software: what the Software tag and XMP CreatorTool say.
    """

    source: Path
    method: str
    layers: int
    files: tuple[Path, ...]
    software: str


def carries_metadata(path: str | Path) -> bool:
    """Whether a layer holds EXIF, XMP or IPTC, read from its header by Pillow (a camera's
    RAW or HEIF file always does)."""
    path = Path(path)
    if camera_kind(path) is not None:
        return True
    from PIL import Image

    try:
        with Image.open(path) as image:
            info = image.info
            if {"exif", "xmp", "XML:com.adobe.xmp", "photoshop", "Raw profile type exif"} & set(info):
                return True
            tags = getattr(image, "tag_v2", None)
            return bool(tags) and bool({34665, 34853, 700, 33723} & set(tags))
    except Exception:  # unreadable here: its decoder reports it
        return False


def _exiv2():
    """pyexiv2, quiet (its problems become our warnings), or ``None`` when not installed."""
    try:
        import pyexiv2
    except ImportError:
        return None
    pyexiv2.set_log_level(4)  # 2.14 and later read CR3 and HEIF (ISO base media) as well
    pyexiv2.registerNs(NAMESPACE, PREFIX)
    return pyexiv2


def embed(data: bytes, output: Path, record: FusionRecord, size: tuple[int, int]) -> bytes:
    """``data`` (an encoded JPEG, PNG or TIFF) with the source layer's metadata, corrected for
    the fused image of ``size`` (width, height), and the fusion's record.

    Returns the data unchanged, with a warning, when the metadata cannot be read or kept (no
    Exiv2, a damaged block, EXIF too large for a JPEG).
    """
    suffix = output.suffix.lower()
    if suffix not in JPEG_SUFFIXES + (".png", ".tif", ".tiff"):
        warnings.warn(f"{output.name}: {suffix} keeps no EXIF or XMP; the metadata of "
                      f"{record.source.name} is not written", stacklevel=3)
        return data
    exiv2 = _exiv2()
    if exiv2 is None:
        warnings.warn(f"the metadata of {record.source.name} is not kept in {output.name}: "
                      f"keeping EXIF and XMP needs Exiv2 ({INSTALL})", stacklevel=3)
        return data
    try:
        carrier = _carrier(exiv2, record, size, output.name)
        exif, xmp = True, True
        if suffix in JPEG_SUFFIXES:
            exif, xmp = _fits_jpeg(carrier, record.source.name, output.name)
        target = exiv2.ImageData(data)
        try:
            exiv2.ImageData(carrier).copy_to_another_image(
                target, exif=exif, iptc=True, xmp=xmp, comment=False, icc=False,
                thumbnail=False)
            return target.get_bytes()
        finally:
            target.close()
    except (RuntimeError, ValueError, OSError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        warnings.warn(f"the metadata of {record.source.name} is not kept in {output.name}: "
                      f"{detail}", stacklevel=3)
        return data


def _blank() -> bytes:
    """A 1x1 PNG: it holds EXIF of any size (in one eXIf chunk), so the carrier is measured
    before a JPEG's limits are applied."""
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0\0")) + chunk(b"IEND", b""))


def _carrier(exiv2, record: FusionRecord, size: tuple[int, int], output: str) -> bytes:
    """The source's metadata, cleaned and corrected, in a blank PNG."""
    source = exiv2.Image(str(record.source))
    carrier = exiv2.ImageData(_blank())
    try:
        source.copy_to_another_image(carrier, exif=True, iptc=True, xmp=True, comment=False,
                                     icc=False, thumbnail=False)
        exif = carrier.read_exif()
        _warn_dropped(source.read_exif(), exif, record.source.name, output)
        dropped = {key: None for key in exif if not _kept(key)}
        if dropped:
            carrier.modify_exif(dropped)
        if exif:
            width, height = size
            carrier.modify_exif({"Exif.Image.Orientation": "1",
                                 "Exif.Image.Software": record.software,
                                 "Exif.Photo.PixelXDimension": str(width),
                                 "Exif.Photo.PixelYDimension": str(height)})
        xmp = carrier.read_xmp()
        stale = {key: None for key in xmp if key in (
            "Xmp.tiff.ImageWidth", "Xmp.tiff.ImageLength", "Xmp.exif.PixelXDimension",
            "Xmp.exif.PixelYDimension", "Xmp.tiff.BitsPerSample")}
        if stale:
            carrier.modify_xmp(stale)
        carrier.modify_xmp(_record(exiv2, record, "Xmp.tiff.Orientation" in xmp))
        return carrier.get_bytes()
    finally:
        carrier.close()
        source.close()


def _warn_dropped(before: dict, after: dict, source: str, output: str) -> None:
    """Exiv2 leaves out a tag too large for one EXIF block (64 KB, what a JPEG's APP1
    segment holds, whatever the format): say which were left out."""
    lost = [key for key in before if _kept(key) and key not in after]
    if lost:
        size = sum(len(str(before[key])) for key in lost)
        names = ", ".join(key.rsplit(".", 1)[1] for key in lost[:5])
        warnings.warn(f"the EXIF of {source} is too large for a JPEG APP1 segment (64 KB): "
                      f"{output} is written without {names} ({size:,} bytes)", stacklevel=4)


def _kept(key: str) -> bool:
    _, group, name = key.split(".", 2)
    return group in KEPT_GROUPS and name != "MakerNote" or group == "Image" and name in IMAGE_TAGS


def _record(exiv2, record: FusionRecord, has_orientation: bool) -> dict:
    """The fusion in XMP: method, layer count, the layers' files, their focus distances."""
    distances = [_focus_distance(exiv2, path) for path in record.files]
    values = {"Xmp.xmp.CreatorTool": record.software,
              f"Xmp.{PREFIX}.Method": record.method,
              f"Xmp.{PREFIX}.Layers": str(record.layers),
              f"Xmp.{PREFIX}.SourceFiles": [path.name for path in record.files],
              f"Xmp.{PREFIX}.MetadataFrom": record.source.name}
    if any(distances):
        values[f"Xmp.{PREFIX}.FocusDistances"] = [d or "unknown" for d in distances]
    if has_orientation:
        values["Xmp.tiff.Orientation"] = "1"
    return values


def _focus_distance(exiv2, path: Path) -> str:
    """A layer's focus distance as its EXIF or XMP states it (metres), or ``""``."""
    try:
        image = exiv2.Image(str(path))
        try:
            found = {**image.read_exif(), **image.read_xmp()}
        finally:
            image.close()
    except (RuntimeError, ValueError, OSError):
        return ""
    for key in _DISTANCE_KEYS:
        if found.get(key):
            return _metres(str(found[key]))
    return ""


def _metres(value: str) -> str:
    """A distance as EXIF writes it (a rational ``8/25``) in plain decimals (``0.32``)."""
    try:
        number = float(Fraction(value.split()[0]))
    except (ValueError, ZeroDivisionError):
        return value
    return f"{number:g}"


def _fits_jpeg(carrier: bytes, source: str, output: str) -> tuple[bool, bool]:
    """Whether the carrier's EXIF and XMP each fit one JPEG segment; a warning for each that
    does not (it is left out, the rest is kept)."""
    exif = _png_chunk(carrier, b"eXIf")
    xmp = _png_chunk(carrier, b"iTXt")
    fits = []
    for name, block, limit in (("EXIF", exif, JPEG_EXIF_LIMIT), ("XMP", xmp, JPEG_XMP_LIMIT)):
        ok = len(block) <= limit
        if not ok:
            warnings.warn(f"the {name} of {source} ({len(block):,} bytes) is too large for a "
                          f"JPEG segment ({limit:,} bytes): {output} is written without it; "
                          "a .tif or .png keeps it", stacklevel=4)
        fits.append(ok)
    return fits[0], fits[1]


def _png_chunk(data: bytes, kind: bytes) -> bytes:
    """The payload of a PNG's first chunk of ``kind`` (``b""`` if none)."""
    stream, position = io.BytesIO(data), 8
    while position + 8 <= len(data):
        stream.seek(position)
        length, found = struct.unpack(">I4s", stream.read(8))
        if found == kind:
            return data[position + 8:position + 8 + length]
        position += 12 + length
    return b""
