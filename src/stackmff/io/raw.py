"""Camera RAW files developed by LibRaw (rawpy, the ``raw`` extra), every layer of a stack
with the same settings.

The settings are taken once, from the reference layer, and never per frame: a frame's own
white balance or brightness would give each layer its own colour, and the fused image would
change colour where the focus map changes layer. So: the reference layer's as-shot white
balance, no automatic brightening, and none of LibRaw's data-dependent maximum adjustment;
16-bit linear output, converted by the camera's colour matrix to the primaries of the chosen
space, then encoded with that space's curve (:mod:`stackmff.io.colour`). Black and white
levels stay each file's own: they are the sensor's calibration, not a choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stackmff.errors import StackError
from stackmff.io.colour import ColourSpace, colour_space, encode

INSTALL = 'RAW files need LibRaw: pip install "stackmff[raw]"'


@dataclass(frozen=True)
class DevelopSettings:
    """How every layer of one stack is developed.

    Attributes:
        space: the colour space of the developed pixels (and the output's profile).
        white_balance: the reference layer's multipliers (R, G, B, G2), as shot.
        reference: the file they were taken from, for messages and the report.
    """

    space: ColourSpace
    white_balance: tuple[float, float, float, float]
    reference: Path


def _rawpy():
    try:
        import rawpy
    except ImportError:
        raise StackError(INSTALL) from None
    return rawpy


def _opened(path: Path):
    """The file opened by LibRaw, or one line naming it."""
    rawpy = _rawpy()
    try:
        return rawpy.imread(str(path))
    except (rawpy.LibRawError, OSError, ValueError) as exc:
        raise StackError(f"cannot decode {path}: LibRaw cannot read it "
                         f"({_reason(exc)})") from None


def _reason(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def probe_raw(path: str | Path) -> tuple[int, int]:
    """The developed size ``(height, width)`` (orientation applied), from the header."""
    with _opened(Path(path)) as raw:
        sizes = raw.sizes
    height, width = sizes.height, sizes.width
    return (width, height) if sizes.flip in (5, 6) else (height, width)


def settings_for(reference: str | Path, space: str | ColourSpace) -> DevelopSettings:
    """The stack's develop settings, from its reference layer.

    Raises:
        StackError: the file cannot be read, or the space is unknown.
    """
    space = colour_space(space) if isinstance(space, str) else space
    reference = Path(reference)
    with _opened(reference) as raw:
        balance = [float(v) for v in raw.camera_whitebalance]
        if not any(balance[:3]):  # no as-shot balance recorded: the camera's daylight one
            balance = [float(v) for v in raw.daylight_whitebalance]
    if not any(balance[:3]):
        balance = [1.0, 1.0, 1.0, 1.0]
    if balance[3] == 0:  # LibRaw's "same as the first green"
        balance[3] = balance[1]
    return DevelopSettings(space, tuple(balance), reference)


def develop(path: str | Path, settings: DevelopSettings) -> np.ndarray:
    """One RAW file as ``(H, W, 3)`` uint16 in ``settings.space``, orientation applied.

    Raises:
        StackError: LibRaw cannot read or develop the file (one line naming it).
    """
    rawpy = _rawpy()
    path = Path(path)
    with _opened(path) as raw:
        try:
            linear = raw.postprocess(
                demosaic_algorithm=rawpy.DemosaicAlgorithm.AHD, use_camera_wb=False,
                use_auto_wb=False, user_wb=list(settings.white_balance),
                output_color=getattr(rawpy.ColorSpace, settings.space.libraw),
                output_bps=16, gamma=(1.0, 1.0), no_auto_bright=True, bright=1.0,
                adjust_maximum_thr=0.0, highlight_mode=rawpy.HighlightMode.Clip)
        except (rawpy.LibRawError, OSError, ValueError, MemoryError) as exc:
            raise StackError(f"cannot decode {path}: LibRaw cannot develop it "
                             f"({_reason(exc)})") from None
    return encode(np.ascontiguousarray(linear), settings.space)
