"""OME-TIFF and ImageJ hyperstacks with tifffile: read one stack's pages at a time, write
TCYX with OME-XML (physical sizes, channel names and colours).

tifffile already parses OME-XML and ImageJ descriptions into named axes; the physical sizes,
the Z origin (the first plane's ``PositionZ``) and the channels are taken from the XML (OME)
or the ImageJ description, ``XResolution`` tag and LUTs here.
"""

from __future__ import annotations

import io
import itertools
import logging
import math
import re
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import tifffile

from stackmff.errors import StackError
from stackmff.io.tiff import (
    check_data_in_file,
    one_line,
    raise_logged,
    tiff_errors,
    tifffile_errors,
)
from stackmff.microscopy.axes import (
    AxisLayout,
    Metadata,
    axis_layout,
    number,
    to_micrometres,
    z_origin,
)
from stackmff.microscopy.source import Source

IN_PAGE = frozenset("YXC-")  # axes a TIFF page holds (samples become C)
OME_SUFFIXES = (".ome.tif", ".ome.tiff")
_OME_ROOT = re.compile(r"<(\w+:)?OME[\s>/]")


def is_hyperstack(path: Path) -> bool:
    """OME-TIFF, or an ImageJ hyperstack with more than one channel or time point."""
    try:
        with tifffile_errors(), tifffile.TiffFile(path) as tif:
            if tif.is_ome or claims_ome(tif, path):
                return True
            if not tif.is_imagej or not tif.series:
                return False
            series = tif.series[0]
            return any(a in "CT" and n > 1 for a, n in zip(series.axes, series.shape))
    except Exception:  # damaged: the plain reader reports it
        return False


def open_tiff(path: Path) -> Source:
    """Open a TIFF's header and describe its stacks; pages are read by :meth:`Source.read`."""
    with tiff_errors(path) as errors:
        tif = tifffile.TiffFile(path)
        try:
            source = _describe(tif, path)
            check_data_in_file(tif, path.stat().st_size, path)
            raise_logged(errors, path)
        except BaseException:
            tif.close()
            raise
    return source


def _describe(tif: tifffile.TiffFile, path: Path) -> Source:
    ome = claims_ome(tif, path)
    if ome:
        check_ome_xml(tif, path)
    with tifffile_errors(logging.WARNING) as logged:
        series = list(tif.series)
    if ome:
        check_ome_series(series, logged, path)
    if not series:
        raise StackError(f"cannot decode {path}: the TIFF holds no images")
    shapes = {tuple(s.shape) for s in series}
    if len(shapes) > 1 or len({s.axes for s in series}) > 1:
        raise StackError(f"cannot read {path}: its scenes differ in shape "
                         f"({', '.join(s.axes + str(tuple(s.shape)) for s in series)})")
    layout = axis_layout(series[0].axes, series[0].shape, str(path))
    outer = _outer_axes(layout, len(series[0].pages), path)
    kind = "ome-tiff" if tif.is_ome else "imagej" if tif.is_imagej else "tiff"
    metadata = (_ome_metadata(tif.ome_metadata, str(path)) if tif.is_ome
                else _imagej_metadata(tif, str(path)) if tif.is_imagej else Metadata())

    def read(scene: int, t: int) -> np.ndarray:
        return _read_stack(series[scene], layout, outer, t, path)

    return Source(path, layout, len(series), metadata, np.dtype(series[0].dtype), kind, read,
                  tif.close)


def claims_ome(tif: tifffile.TiffFile, path: Path) -> bool:
    """Whether a TIFF says it is an OME-TIFF: OME-XML in its first page's description (even
    cut short, which tifffile then ignores) or, without an ImageJ description, its name.
    tifffile reads a malformed one as a plain series of pages, channels mixed into Z."""
    description = (tif.pages.first.description or "").lstrip()
    if description.startswith("<") and _OME_ROOT.search(description[:65536]):
        return True
    return path.name.lower().endswith(OME_SUFFIXES) and not tif.is_imagej


def check_ome_xml(tif: tifffile.TiffFile, path: Path) -> None:
    """Refuse OME-XML that does not parse, describes no image or contradicts the pages.

    Raises:
        StackError: naming what is wrong, in one line.
    """
    xml = tif.pages.first.description or ""
    if not xml.lstrip().startswith("<"):
        raise StackError(f"cannot read {path}: named OME-TIFF, but its first page holds no "
                         "OME-XML (rename it .tif to read its pages as one stack)")
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise StackError(f"cannot read {path}: its OME-XML does not parse ({one_line(exc)}); "
                         "the file is damaged or its metadata was cut short") from None
    images = root.findall("{*}Image/{*}Pixels")
    if not root.tag.endswith("OME") or not images:
        raise StackError(f"cannot read {path}: its OME-XML describes no image")
    mismatch = _ome_mismatch(images, root, tif, path)
    if mismatch:
        raise StackError(f"cannot read {path}: its OME-XML does not match its pages "
                         f"({mismatch})")


def _ome_mismatch(images: list, root, tif: tifffile.TiffFile, path: Path) -> str | None:
    """What the pages contradict in the XML: a size that is no whole number, the first
    image's plane size, or (in a one-file OME-TIFF) the number of planes."""
    sizes = []
    for pixels in images:
        for axis in "XYZCT":
            value = pixels.get(f"Size{axis}", "")
            if not value.strip().isdigit():
                return f"Size{axis} {value!r} is not a whole number"
        sizes.append([int(pixels.get(f"Size{axis}")) for axis in "XYZCT"])
    page = tif.pages.first
    if sizes[0][:2] != [page.imagewidth, page.imagelength]:
        return (f"SizeX {sizes[0][0]} x SizeY {sizes[0][1]} declared, the pages are "
                f"{page.imagewidth} x {page.imagelength}")
    files = {u.get("FileName") for u in root.iter() if u.tag.endswith("}UUID")} - {None}
    if files - {path.name}:
        return None  # planes in other files of a set: tifffile matches them
    planes = sum(z * c * t for _, _, z, c, t in sizes) // max(page.samplesperpixel, 1)
    if planes != len(tif.pages):
        return (f"{planes} planes declared (SizeZ x SizeC x SizeT), the file has "
                f"{len(tif.pages)} pages")
    return None


def check_ome_series(series: list, logged: list[str], path: Path) -> None:
    """Refuse an OME-TIFF that tifffile did not read as its XML describes (it reads the pages
    as a plain series, or zeroes missing planes, and only logs it)."""
    complaints = [m.split("> ", 1)[-1].split(". Missing data")[0] for m in logged
                  if "OME series" in m]
    if complaints or not series or series[0].kind.lower() != "ome":
        found = one_line(complaints[0]) if complaints else "read as a plain series of pages"
        raise StackError(f"cannot read {path}: its OME-XML does not match its pages ({found})")


def _outer_axes(layout: AxisLayout, pages: int, path: Path) -> int:
    """How many leading axes index pages (the rest lie inside each page)."""
    for count in range(len(layout.axes) + 1):
        if math.prod(layout.shape[:count]) == pages and set(layout.axes[count:]) <= IN_PAGE:
            return count
    raise StackError(f"cannot read {path}: its {pages} pages do not match the axes "
                     f"{layout.axes} of shape {layout.shape}")


def _read_stack(series, layout: AxisLayout, outer: int, t: int, path: Path) -> np.ndarray:
    """Decode the pages of time point ``t`` into ``(C, Z, Y, X)``."""
    _, channels, planes, height, width = layout.tczyx
    axes, shape = layout.axes[:outer], layout.shape[:outer]
    inner = [a for a in layout.axes[outer:] if a != "-"]
    stack = np.empty((channels, planes, height, width), series.dtype)
    ranges = [range(n) if a in "CZ" else [t] if a == "T" else [0] for a, n in zip(axes, shape)]
    pages = series.pages
    with tiff_errors(path, what="") as errors:
        for index in itertools.product(*ranges):
            number = int(np.ravel_multi_index(index, shape)) if shape else 0
            page = pages[number]
            if page is None:  # tifffile's place for a page it could not find
                raise StackError(f"cannot read {path}: page {number} of the stack is missing")
            data = np.asarray(page.asarray()).reshape([layout.size(a) for a in inner])
            data = np.transpose(data, [inner.index(a) for a in "CYX" if a in inner])
            z = index[axes.index("Z")]
            if "C" in axes:
                stack[index[axes.index("C")], z] = data
            else:
                stack[:, z] = data if "C" in inner else data[None]
        raise_logged(errors, path)
    return stack


def _ome_color(value: str | None) -> str | None:
    """OME's signed 32-bit RGBA integer as ``RRGGBB``."""
    try:
        rgba = int(value) & 0xFFFFFFFF
    except (TypeError, ValueError):
        return None
    return f"{rgba >> 24 & 255:02X}{rgba >> 16 & 255:02X}{rgba >> 8 & 255:02X}"


def _ome_metadata(xml: str | None, where: str) -> Metadata:
    """Physical sizes, Z origin and channels of the first image of an OME-XML document."""
    try:
        pixels = ElementTree.fromstring(xml or "").find("{*}Image/{*}Pixels")
    except ElementTree.ParseError:
        pixels = None
    if pixels is None:
        return Metadata()
    get = pixels.attrib.get
    sizes = [to_micrometres(number(get(f"PhysicalSize{a}"), where, f"PhysicalSize{a}"),
                            get(f"PhysicalSize{a}Unit")) for a in "XYZ"]
    origin = 0.0
    for plane in pixels.findall("{*}Plane"):
        if plane.get("TheZ", "0") == "0" and plane.get("PositionZ") is not None:
            origin = z_origin(plane.get("PositionZ"), plane.get("PositionZUnit"), where,
                              "PositionZ")
            break
    channels = pixels.findall("{*}Channel")
    return Metadata(*sizes, z_origin=origin,
                    channel_names=tuple(c.get("Name") for c in channels),
                    channel_colors=tuple(_ome_color(c.get("Color")) for c in channels))


def _imagej_metadata(tif: tifffile.TiffFile, where: str) -> Metadata:
    """Z step and unit from the ImageJ description, pixel size from XResolution, colours
    from the channel LUTs."""
    description = tif.imagej_metadata or {}
    unit = description.get("unit")
    unit = None if unit in (None, "pixel", "") else unit
    size_x = size_y = None
    tags = tif.series[0].keyframe.tags
    for axis, tag in (("x", "XResolution"), ("y", "YResolution")):
        value = tags.valueof(tag)
        if value and value[0] and unit:
            size = to_micrometres(value[1] / value[0], unit)
            size_x, size_y = (size, size_y) if axis == "x" else (size_x, size)
    colors = []
    for lut in description.get("LUTs") or []:
        top = np.asarray(lut)[:3, -1].astype(np.int64)
        top = top >> 8 if top.max() > 255 else top  # 16-bit LUTs
        colors.append("".join(f"{int(v):02X}" for v in top))
    spacing = number(description.get("spacing"), where, "spacing")
    size_z = to_micrometres(spacing, unit) if unit else None
    return Metadata(size_x, size_y, size_z, channel_colors=tuple(colors))


def _ome_int_color(color: str | None) -> int | None:
    if not color:
        return None
    value = (int(color, 16) << 8) | 0xFF
    return value - (1 << 32) if value >= 1 << 31 else value


def ome_description(metadata: Metadata, axes: str, channels: int = 0) -> dict:
    """tifffile's ``metadata`` for an OME-TIFF with these axes."""
    described: dict = {"axes": axes}
    for axis, size in (("X", metadata.size_x), ("Y", metadata.size_y)):
        if size is not None:
            described[f"PhysicalSize{axis}"] = size
            described[f"PhysicalSize{axis}Unit"] = "µm"
    if channels:
        channel: dict = {}
        names = metadata.names(channels)
        if any(names):
            channel["Name"] = [n or f"C{i}" for i, n in enumerate(names)]
        colors = [_ome_int_color(c) for c in metadata.colors(channels)]
        if all(c is not None for c in colors):
            channel["Color"] = colors
        if channel:
            described["Channel"] = channel
    return described


def encode_ome_tiff(scenes: list[np.ndarray], axes: str, metadata: Metadata,
                    photometric: str = "minisblack") -> bytes:
    """One series per scene, each with ``axes`` (e.g. ``TCYX``), zlib-compressed."""
    buffer = io.BytesIO()
    channels = scenes[0].shape[axes.index("C")] if "C" in axes else 0
    big = sum(s.nbytes for s in scenes) > 2**31
    with tifffile.TiffWriter(buffer, ome=True, bigtiff=big) as tif:
        for scene in scenes:
            tif.write(scene, photometric=photometric, compression="zlib",
                      metadata=ome_description(metadata, axes, channels))
    return buffer.getvalue()
