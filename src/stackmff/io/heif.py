"""HEIF/HEIC images (phones' focus brackets) decoded by libheif (pillow-heif, the ``heif``
extra): upright, at their own bit depth.

libheif applies the file's rotation and mirroring (its ``irot``/``imir`` properties, which
HEIF makes authoritative over an EXIF orientation), so the pixels come upright and the EXIF
orientation is not applied again. A 10- or 12-bit image is kept: its values are scaled to
the full 16-bit range (1023 becomes 65535), as an 8-bit layer's are in a 16-bit stack.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stackmff.errors import StackError

INSTALL = 'HEIC/HEIF files need libheif: pip install "stackmff[heif]"'


def _pillow_heif():
    try:
        import pillow_heif
    except ImportError:
        raise StackError(INSTALL) from None
    return pillow_heif


def _opened(path: Path):
    pillow_heif = _pillow_heif()
    try:
        return pillow_heif.open_heif(str(path), convert_hdr_to_8bit=False)
    except (ValueError, RuntimeError, OSError, SyntaxError) as exc:
        raise StackError(f"cannot decode {path}: not a readable HEIF image "
                         f"({' '.join(str(exc).split()) or type(exc).__name__})") from None


def probe_heif(path: str | Path) -> tuple[int, int, int, bytes | None]:
    """``(height, width, bit depth, ICC profile)`` of the primary image, from the header."""
    heif = _opened(Path(path))
    width, height = heif.size
    return height, width, int(heif.info.get("bit_depth", 8)), heif.info.get("icc_profile")


def read_heif(path: str | Path) -> np.ndarray:
    """The primary image as ``(H, W, 3)`` (or grey ``(H, W)``): uint8 for 8 bit, uint16
    scaled to the full range for more.

    Raises:
        StackError: a damaged or truncated file (one line naming it).
    """
    path = Path(path)
    heif = _opened(path)
    depth = int(heif.info.get("bit_depth", 8))
    try:
        pixels = np.asarray(heif)
    except (ValueError, RuntimeError, OSError) as exc:
        raise StackError(f"cannot decode {path}: damaged or truncated HEIF image "
                         f"({' '.join(str(exc).split()) or type(exc).__name__})") from None
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[:, :, :3]
    if depth <= 8:
        return np.ascontiguousarray(pixels, np.uint8)
    # libheif's 16-bit samples hold the value in the top bits: shift it down, then scale
    values = pixels.astype(np.uint32) >> (16 - depth)
    top = (1 << depth) - 1
    return ((values * 65535 + top // 2) // top).astype(np.uint16)
