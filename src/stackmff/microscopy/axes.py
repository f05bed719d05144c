"""The microscopy data model: named axes put in T, C, Z, Y, X order, and the metadata that
travels from input to output (physical sizes in µm, the Z origin, channel names and colours).

Readers describe a file's axes as letters; :func:`axis_layout` decides which is T, C and Z
once, for every reader, and refuses what cannot be decided.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from stackmff.errors import StackError

CANONICAL = "TCZYX"
# what a length unit is in micrometres (OME's own names, their symbols, ImageJ's spellings)
MICROMETRES = {"µm": 1.0, "μm": 1.0, "um": 1.0, "micron": 1.0, "microns": 1.0,
               "micrometer": 1.0, "micrometre": 1.0, "\\u00B5m": 1.0, "nm": 1e-3,
               "nanometer": 1e-3, "nanometre": 1e-3, "mm": 1e3, "millimeter": 1e3,
               "millimetre": 1e3, "cm": 1e4, "centimeter": 1e4, "m": 1e6, "meter": 1e6,
               "metre": 1e6}
FLOAT32_MAX = float(np.finfo(np.float32).max)


def to_micrometres(value: float | None, unit: str | None, default: str = "µm") -> float | None:
    """A length in µm, or ``None`` when it is missing, not positive or in an unknown unit."""
    if value is None:
        return None
    name = (unit or default).strip()
    factor = MICROMETRES.get(name, MICROMETRES.get(name.lower()))
    value = float(value)
    return value * factor if factor is not None and value > 0 and np.isfinite(value) else None


def number(value: object, where: str, name: str) -> float | None:
    """A metadata value as a float, ``None`` when missing.

    Raises:
        StackError: a value that is no number (``PhysicalSizeZ="abc"``), naming the file and
            the key; float's own message names neither.
    """
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise StackError(f"cannot read {where}: its {name} {value!r} is not a number") from None


def z_origin(value: object, unit: str | None, where: str, name: str,
             default: str = "µm") -> float:
    """The position of plane 0 in µm; 0 when missing or in an unknown unit. A value that is
    no finite number (``NaN``, ``inf``) is missing too, with a warning: added to every height,
    it would make them all NaN or inf."""
    if value is None:
        return 0.0
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        warnings.warn(f"{where}: its Z origin ({name} {value}) is not a finite number; it is "
                      "taken as missing (heights count from 0)", stacklevel=2)
        return 0.0
    factor = to_micrometres(1.0, unit, default)
    return number * factor if factor else 0.0


@dataclass(frozen=True)
class Metadata:
    """What a microscopy image says about itself, in the units the outputs use.

    Attributes:
        size_x, size_y, size_z: pixel size and Z step in µm, ``None`` when unknown.
        z_origin: the position of plane 0 along Z in µm (0 when unknown).
        channel_names: one per channel, ``None`` where a channel has no name.
        channel_colors: ``"RRGGBB"`` per channel, ``None`` where unknown.
    """

    size_x: float | None = None
    size_y: float | None = None
    size_z: float | None = None
    z_origin: float = 0.0
    channel_names: tuple[str | None, ...] = ()
    channel_colors: tuple[str | None, ...] = ()

    def names(self, channels: int) -> list[str | None]:
        """The channel names padded to ``channels``."""
        names = list(self.channel_names[:channels])
        return names + [None] * (channels - len(names))

    def colors(self, channels: int) -> list[str | None]:
        colors = list(self.channel_colors[:channels])
        return colors + [None] * (channels - len(colors))


@dataclass(frozen=True)
class AxisLayout:
    """How a stored array's axes map to T, C, Z, Y, X.

    Attributes:
        axes: the stored axes, one letter each, after :func:`axis_layout` resolved them
            (``"Z"`` for a lone ``Q``/``I`` stack axis, ``"C"`` for samples, ``"-"`` for an
            axis of size 1 that is dropped).
        shape: the stored shape.
    """

    axes: str
    shape: tuple[int, ...]

    def size(self, letter: str) -> int:
        return self.shape[self.axes.index(letter)] if letter in self.axes else 1

    @property
    def tczyx(self) -> tuple[int, int, int, int, int]:
        return tuple(self.size(a) for a in CANONICAL)

    def key(self, t: int) -> tuple:
        """Index into the stored array that selects time point ``t``: C, Z, Y, X whole."""
        return tuple(t if a == "T" else 0 if a == "-" else slice(None) for a in self.axes)

    def to_czyx(self, selected: np.ndarray) -> np.ndarray:
        """The array that :meth:`key` selected, as ``(C, Z, Y, X)``."""
        kept = [a for a in self.axes if a in "CZYX"]
        array = np.transpose(selected, [kept.index(a) for a in "CZYX" if a in kept])
        return array if "C" in kept else array[None]


def axis_layout(axes: str, shape: tuple[int, ...], where: str) -> AxisLayout:
    """Decide T, C, Z, Y, X among a stored array's axes.

    A lone ``Q`` or ``I`` axis (a stack of pages with no name) is Z when there is no Z; an
    ``S`` (samples) axis is C when there is no C of more than one channel; other axes must be
    of size 1.

    Raises:
        StackError: axes that cannot be told apart, no Y/X, or no Z axis of at least 2 planes.
    """
    axes = axes.upper()
    shape = tuple(int(n) for n in shape)
    if len(axes) != len(shape):
        raise StackError(f"cannot determine the axes of {where}: {len(axes)} axis names "
                         f"{axes!r} for {len(shape)} dimensions {shape}")
    described = f"{where} (axes {axes}, shape {shape})"
    letters = list(axes)
    unnamed = [i for i, a in enumerate(letters) if a in "QI" and shape[i] > 1]
    if "Z" not in letters and len(unnamed) == 1:
        letters[unnamed[0]] = "Z"
    channels = [i for i, a in enumerate(letters) if a == "C" and shape[i] > 1]
    samples = [i for i, a in enumerate(letters) if a == "S" and shape[i] > 1]
    if samples and not channels:
        letters[samples[0]] = "C"
    for i, letter in enumerate(letters):
        if letter not in CANONICAL:
            if shape[i] > 1:
                raise StackError(f"cannot determine the T, C and Z axes of {described}: axis "
                                 f"{axes[i]!r} of size {shape[i]} is none of them")
            letters[i] = "-"
    repeated = sorted({a for a in letters if a != "-" and letters.count(a) > 1})
    if repeated:
        raise StackError(f"cannot determine the T, C and Z axes of {described}: "
                         f"{', '.join(repeated)} appears more than once")
    if "Y" not in letters or "X" not in letters:
        raise StackError(f"cannot determine the image plane of {described}: no Y and X axes")
    if "Z" not in letters or shape[letters.index("Z")] < 2:
        raise StackError(f"{where} has no Z axis of 2 planes or more (its axes: {axes}, shape "
                         f"{shape}): a focus stack needs planes at several depths")
    return AxisLayout("".join(letters), shape)


def resolve_channel(focus_channel: int | str | None, metadata: Metadata, channels: int,
                    where: str) -> int | str:
    """The channel index that decides the focus, or ``"mean"``.

    ``None`` means channel 0 for one channel and ``"mean"`` for several.

    Raises:
        StackError: an index out of range, a name the metadata does not have, or a name
            that several channels have.
    """
    if focus_channel is None:
        return 0 if channels == 1 else "mean"
    if isinstance(focus_channel, str) and focus_channel.strip().lower() == "mean":
        return "mean"
    if isinstance(focus_channel, (int, np.integer)) or str(focus_channel).strip().lstrip(
            "-").isdigit():
        index = int(focus_channel)
        if not 0 <= index < channels:
            raise StackError(f"--focus-channel {index} is out of range: {where} has {channels} "
                             f"channel{'s' if channels != 1 else ''} (0..{channels - 1})")
        return index
    names = metadata.names(channels)
    matches = [i for i, name in enumerate(names) if name == focus_channel]
    if len(matches) > 1:
        raise StackError(f"--focus-channel {focus_channel!r} is ambiguous: {where} has "
                         f"{len(matches)} channels of that name (indices "
                         f"{', '.join(map(str, matches))}); give an index")
    if matches:
        return matches[0]
    known = ", ".join(f"{i}: {n}" for i, n in enumerate(names) if n) or "none has a name"
    raise StackError(f"no channel named {focus_channel!r} in {where} (channels: {known}); "
                     "give a name, an index or 'mean'")


def check_heights(metadata: Metadata, planes: int, where: str) -> None:
    """Refuse heights that float32 cannot hold (a Z step or origin near 1e300 would write
    inf): known from the metadata alone, so checked before any pixel is read.

    Raises:
        StackError: the first or last plane's height beyond float32.
    """
    if metadata.size_z is None:
        return
    ends = (metadata.z_origin, metadata.z_origin + (planes - 1) * metadata.size_z)
    if not all(math.isfinite(end) and abs(end) <= FLOAT32_MAX for end in ends):
        raise StackError(f"{where}: its heights (Z origin {metadata.z_origin:g} µm, Z step "
                         f"{metadata.size_z:g} µm, {planes} planes) do not fit the height "
                         "map's float32; check its metadata")


def heights(focus_map: np.ndarray, metadata: Metadata, where: str,
            warn: bool = True) -> tuple[np.ndarray, bool]:
    """Plane index x Z step + Z origin in µm, float32; without a Z step, the indices.

    Raises:
        StackError: heights beyond float32 (see :func:`check_heights`).
    """
    if metadata.size_z is None:
        if warn:
            warnings.warn(f"{where} has no Z step in its metadata: the height map holds "
                          "plane indices, not micrometres", stacklevel=2)
        return focus_map.astype(np.float32), False
    check_heights(metadata, int(focus_map.max(initial=0)) + 1, where)
    values = focus_map.astype(np.float64) * metadata.size_z + metadata.z_origin
    return values.astype(np.float32), True
