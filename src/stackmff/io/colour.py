"""Colour spaces of developed camera files: their encoding curves and ICC profiles, and the
checks on profiles that layers carry.

A RAW file has no colour space until it is developed: LibRaw converts the camera's colours
to a space's primaries in linear light, and this module encodes those linear values with the
space's curve and names the result with an ICC profile. sRGB's profile comes from LittleCMS
(Pillow's ImageCms); the others are matrix/curve profiles built here from the published
primaries, white point and curve of each space (the same numbers the encoding uses, so the
pixels and the profile agree). Nothing here needs a profile file on the machine.
"""

from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from stackmff.errors import StackError

D50 = (0.3457, 0.3585)
D65 = (0.3127, 0.3290)
# the date every profile written here carries: LittleCMS stamps the current time, which
# would make two developments of one stack differ in their bytes
PROFILE_DATE = (2000, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class ColourSpace:
    """A space a RAW stack can be developed into.

    Attributes:
        name: as ``--colour-space`` takes it.
        title: the profile's description.
        libraw: the name of LibRaw's output space (rawpy.ColorSpace) with these primaries.
        primaries: red, green, blue chromaticities (x, y); white: the white point's.
        gamma: the curve's exponent; ``None`` for sRGB's piecewise curve; 1 for linear.
    """

    name: str
    title: str
    libraw: str
    primaries: tuple[tuple[float, float], ...]
    white: tuple[float, float]
    gamma: float | None

    @property
    def linear(self) -> bool:
        return self.gamma == 1.0


_SRGB_PRIMARIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))
COLOUR_SPACES = {space.name: space for space in (
    ColourSpace("srgb", "sRGB", "sRGB", _SRGB_PRIMARIES, D65, None),
    ColourSpace("linear", "Linear sRGB (sRGB primaries, gamma 1.0)", "sRGB", _SRGB_PRIMARIES,
                D65, 1.0),
    # 563/256 and 461/256: the exponents as an ICC curve stores them (8.8 fixed point)
    ColourSpace("adobe-rgb", "Compatible with Adobe RGB (1998)", "Adobe",
                ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06)), D65, 563 / 256),
    ColourSpace("prophoto", "ProPhoto RGB (ROMM primaries, gamma 1.8)", "ProPhoto",
                ((0.7347, 0.2653), (0.1596, 0.8404), (0.0366, 0.0001)), D50, 461 / 256),
)}
DEFAULT_SPACE = "srgb"


def colour_space(name: str) -> ColourSpace:
    """The space called ``name``.

    Raises:
        StackError: an unknown name, listing the known ones.
    """
    try:
        return COLOUR_SPACES[name]
    except KeyError:
        raise StackError(f"--colour-space takes {', '.join(COLOUR_SPACES)}, "
                         f"got {name!r}") from None


def _srgb_curve(linear: np.ndarray) -> np.ndarray:
    return np.where(linear <= 0.0031308, 12.92 * linear,
                    1.055 * np.power(np.maximum(linear, 0.0031308), 1 / 2.4) - 0.055)


def _curve(linear: np.ndarray, space: ColourSpace) -> np.ndarray:
    if space.gamma is None:
        return _srgb_curve(linear)
    return linear if space.linear else np.power(np.clip(linear, 0, 1), 1 / space.gamma)


@lru_cache(maxsize=8)
def _table(name: str) -> np.ndarray:
    """Every 16-bit linear value's 16-bit encoding (computed once in float64)."""
    linear = np.arange(65536, dtype=np.float64) / 65535
    return np.rint(_curve(linear, COLOUR_SPACES[name]) * 65535).astype(np.uint16)


def encode(layers: np.ndarray, space: ColourSpace | str) -> np.ndarray:
    """Linear pixels (uint16, or float in [0, 1]) encoded with the space's curve, in the same
    type; 16-bit values go through one table, so the result is exact and repeatable."""
    space = colour_space(space) if isinstance(space, str) else space
    if space.linear:
        return layers
    if layers.dtype == np.uint16:
        return _table(space.name)[layers]
    return _curve(np.asarray(layers, np.float32), space).astype(np.float32)


def linear_from_perceptual(image: np.ndarray) -> np.ndarray:
    """The inverse of :func:`perceptual` for float values in [0, 1] (for a method that
    computed its pixels on the perceptual view instead of copying them)."""
    values = np.clip(np.asarray(image, np.float32), 0, 1)
    return np.where(values <= 0.04045, values / 12.92,
                    np.power((values + 0.055) / 1.055, 2.4)).astype(np.float32)


def perceptual(layers: np.ndarray) -> np.ndarray:
    """Linear pixels as the eye weighs them (the sRGB curve): what a focus decision on linear
    data looks at, so that detail in the shadows counts as it does in a photograph."""
    return encode(layers, COLOUR_SPACES["srgb"])


@lru_cache(maxsize=8)
def profile(name: str) -> bytes:
    """The ICC profile of a space (sRGB from LittleCMS, the others built here)."""
    space = COLOUR_SPACES[name]
    if space.gamma is None:
        from PIL import ImageCms

        built = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        return _dated(built)
    return _matrix_profile(space)


def check_profile(icc: bytes, where: str) -> None:
    """A profile that LittleCMS can open, or one line naming the file that carries it.

    Raises:
        StackError: a damaged or unreadable profile.
    """
    from PIL import ImageCms

    try:
        ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except Exception as exc:  # LittleCMS's errors vary with the damage
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise StackError(f"{where}: its embedded ICC profile is damaged ({detail})") from None


def describe(icc: bytes | None) -> str:
    """A profile's description for messages ("none" for no profile)."""
    if icc is None:
        return "none"
    from PIL import ImageCms

    try:
        text = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
        return repr(text.strip())
    except Exception:  # described only; check_profile reports damage
        return f"a profile of {len(icc)} bytes"


def _dated(icc: bytes) -> bytes:
    """The profile with :data:`PROFILE_DATE` as its date, and its ID (an MD5, when set)
    recomputed as ICC.1 defines it."""
    data = bytearray(icc)
    data[24:36] = struct.pack(">6H", *PROFILE_DATE)
    if any(data[84:100]):
        probe = bytearray(data)
        probe[44:48], probe[64:68], probe[84:100] = bytes(4), bytes(4), bytes(16)
        data[84:100] = hashlib.md5(bytes(probe)).digest()
    return bytes(data)


# Bradford cone response: the ICC's chromatic adaptation to its D50 connection space
_BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367],
                      [0.0389, -0.0685, 1.0296]])


def _xyz(xy: tuple[float, float]) -> np.ndarray:
    x, y = xy
    return np.array([x / y, 1.0, (1 - x - y) / y])


def _colorants(space: ColourSpace) -> np.ndarray:
    """The columns rXYZ, gXYZ, bXYZ of the space, adapted to D50."""
    primaries = np.stack([_xyz(p) for p in space.primaries], axis=1)
    scale = np.linalg.solve(primaries, _xyz(space.white))
    to_xyz = primaries * scale
    cone_src, cone_d50 = _BRADFORD @ _xyz(space.white), _BRADFORD @ _xyz(D50)
    adapt = np.linalg.inv(_BRADFORD) @ np.diag(cone_d50 / cone_src) @ _BRADFORD
    return adapt @ to_xyz


def _s15(value: float) -> bytes:
    return struct.pack(">i", int(round(value * 65536)))


def _matrix_profile(space: ColourSpace) -> bytes:
    """An ICC v2 display profile: D50-adapted colorants and one curve for all channels
    (identity for linear, else the exponent in 8.8 fixed point)."""
    def xyz_tag(values) -> bytes:
        return b"XYZ " + bytes(4) + b"".join(_s15(v) for v in values)

    def text(kind: bytes, value: str) -> bytes:
        ascii_text = value.encode("ascii") + b"\0"
        if kind == b"text":
            return b"text" + bytes(4) + ascii_text
        return (b"desc" + bytes(4) + struct.pack(">I", len(ascii_text)) + ascii_text
                + bytes(4 + 4 + 2 + 1 + 67))

    curve = (b"curv" + bytes(4) + struct.pack(">I", 0) if space.linear
             else b"curv" + bytes(4) + struct.pack(">IH", 1, int(round(space.gamma * 256))))
    colorants = _colorants(space)
    tags = [(b"desc", text(b"desc", space.title)),
            (b"cprt", text(b"text", "No copyright, use freely")),
            (b"wtpt", xyz_tag(_xyz(D50) * np.array([1, 1, 1]))),
            (b"rXYZ", xyz_tag(colorants[:, 0])), (b"gXYZ", xyz_tag(colorants[:, 1])),
            (b"bXYZ", xyz_tag(colorants[:, 2])), (b"rTRC", curve)]
    offset = 128 + 4 + 12 * (len(tags) + 2)
    table, body = [], b""
    for signature, data in tags:
        padded = data + bytes(-len(data) % 4)
        table.append(signature + struct.pack(">II", offset + len(body), len(data)))
        if signature == b"rTRC":  # the three curves share one element
            table += [sig + struct.pack(">II", offset + len(body), len(data))
                      for sig in (b"gTRC", b"bTRC")]
        body += padded
    size = offset + len(body)
    header = (struct.pack(">I", size) + bytes(4) + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ "
              + struct.pack(">6H", *PROFILE_DATE) + b"acsp" + bytes(4) + bytes(4) + bytes(4)
              + bytes(4) + bytes(8) + struct.pack(">I", 0)
              + b"".join(_s15(v) for v in _xyz(D50)) + bytes(4) + bytes(16) + bytes(28))
    assert len(header) == 128
    return header + struct.pack(">I", len(table)) + b"".join(table) + body
