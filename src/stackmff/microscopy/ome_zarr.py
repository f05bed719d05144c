"""OME-Zarr (NGFF 0.4 on Zarr v2, 0.5 on Zarr v3) with ``zarr`` itself: the metadata is a
few JSON keys (``multiscales``: axes, datasets, coordinateTransformations; ``omero``:
channels), read and written here. Only the full-resolution level is read, one time point at
a time; the output has one level.

``zarr`` is the optional extra ``stackmff[microscopy]``; it is imported only here.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
import warnings
from pathlib import Path

import numpy as np

from stackmff.errors import StackError
from stackmff.io.tiff import one_line
from stackmff.microscopy.axes import Metadata, axis_layout, to_micrometres, z_origin
from stackmff.microscopy.source import EXTRA, Source

VERSIONS = ("0.4", "0.5")
_TYPES = {"time": "T", "channel": "C"}


def zarr_module():
    """The zarr package, or a one-line error naming the extra that installs it."""
    try:
        import zarr
    except ImportError:
        raise StackError(f"reading and writing OME-Zarr needs the zarr package: {EXTRA}") from None
    return zarr


def _letter(axis: dict | str) -> str:
    name = (axis.get("name", "") if isinstance(axis, dict) else str(axis)).lower()
    if name in ("t", "c", "z", "y", "x"):
        return name.upper()
    kind = axis.get("type") if isinstance(axis, dict) else None
    return _TYPES.get(kind, "?")


def open_ome_zarr(path: Path) -> Source:
    """Open an OME-Zarr image (its first multiscale image, full resolution)."""
    zarr = zarr_module()
    try:
        group = zarr.open_group(str(path), mode="r")
        attrs = dict(group.attrs)
    except Exception as exc:
        raise StackError(f"cannot read {path} as OME-Zarr: {one_line(exc)}") from None
    ome, image, axes, dataset = _image_keys(attrs, path)
    version = str(ome.get("version") or image.get("version") or "")
    try:
        array = group[dataset["path"]]
    except Exception as exc:
        raise StackError(f"cannot read {path}: its first dataset is missing "
                         f"({one_line(exc)})") from None
    letters = "".join(_letter(a) for a in axes)
    layout = axis_layout(letters, array.shape, str(path))
    metadata = _metadata(axes, dataset, _omero(ome, path), layout.axes, str(path))

    @functools.cache
    def stored() -> frozenset[str]:  # listed once, at the first read
        return _stored_keys(array, path)

    def read(scene: int, t: int) -> np.ndarray:
        check_chunks(array, layout.key(t), stored(), f"{path} (time point {t})")
        try:
            return layout.to_czyx(_read_planes(array, layout.key(t), layout.axes.index("Z")))
        except Exception as exc:
            raise StackError(f"cannot read {path}: {one_line(exc)}") from None

    return Source(path, layout, 1, metadata, np.dtype(array.dtype), "ome-zarr", read,
                  version=version if version in VERSIONS else None)


def _malformed(path: Path | str, key: str, value: object, wanted: str) -> StackError:
    """A one-line refusal naming the key: NGFF metadata is JSON that people write by hand and
    tools get wrong, and a traceback from deep in the reader says nothing of where."""
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return StackError(f"cannot read {path}: its OME-Zarr metadata is malformed: {key} is "
                      f"{shown}, expected {wanted}")


def _objects(value: object, key: str, path: Path | str) -> list[dict]:
    """``value`` as a list of JSON objects (empty when missing)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _malformed(path, key, value, "a list of objects")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise _malformed(path, f"{key}[{i}]", item, "an object")
    return value


def _text(item: dict, name: str, key: str, path: Path | str) -> str | None:
    """``item[name]`` when it is a string, ``None`` when missing."""
    value = item.get(name)
    if value is not None and not isinstance(value, str):
        raise _malformed(path, f"{key}.{name}", value, "a string")
    return value


def _image_keys(attrs: dict, path: Path) -> tuple[dict, dict, list[dict], dict]:
    """The keys that locate the image (``ome``, the first multiscale image, its axes, its
    first dataset), their types checked so that a malformed one is named, not a traceback.

    Raises:
        StackError: no multiscale image, axes without names, a key of the wrong type.
    """
    ome = attrs.get("ome", attrs)  # 0.5 nests its keys under "ome"
    if not isinstance(ome, dict):
        raise _malformed(path, "ome", ome, "an object")
    multiscales = ome.get("multiscales")
    if not multiscales:
        if "plate" in ome or "bioformats2raw.layout" in ome:
            raise StackError(f"{path} is a collection of images (plate or bioformats2raw); "
                             f"give one image's folder, e.g. {path / '0'}")
        raise StackError(f"cannot read {path}: not an OME-Zarr image (no 'multiscales')")
    image = _objects(multiscales, "multiscales", path)[0]
    axes = image.get("axes")
    if not axes or not isinstance(axes, list) or not all(isinstance(a, dict) for a in axes):
        version = str(ome.get("version") or image.get("version") or "")
        raise StackError(f"cannot determine the axes of {path}: OME-Zarr {version or '< 0.4'} "
                         "does not name them (0.4 and 0.5 do)")
    for i, axis in enumerate(axes):
        for name in ("name", "type", "unit"):
            _text(axis, name, f"multiscales[0].axes[{i}]", path)
    datasets = _objects(image.get("datasets"), "multiscales[0].datasets", path)
    if not datasets:
        raise _malformed(path, "multiscales[0].datasets", image.get("datasets"),
                         "a list of datasets")
    _text(datasets[0], "path", "multiscales[0].datasets[0]", path)
    return ome, image, axes, datasets[0]


def _omero(ome: dict, path: Path) -> dict:
    """The ``omero`` object (channel names and colours), its channels' types checked."""
    omero = ome.get("omero")
    if omero is None:
        return {}
    if not isinstance(omero, dict):
        raise _malformed(path, "omero", omero, "an object")
    for i, channel in enumerate(_objects(omero.get("channels"), "omero.channels", path)):
        for name in ("label", "color"):
            _text(channel, name, f"omero.channels[{i}]", path)
    return omero


def _numbers(value: object, count: int, key: str, where: str) -> list[float]:
    """A scale or translation: one number per axis (shorter, it would leave axes without one).
    """
    wanted = f"a list of {count} numbers (one per axis)"
    if not isinstance(value, list) or len(value) != count:
        raise _malformed(where, key, value, wanted)
    try:
        return [float(v) for v in value]
    except (TypeError, ValueError):
        raise _malformed(where, key, value, wanted) from None


def _color(value: str | None) -> str | None:
    """An ``RRGGBB`` colour, ``None`` for anything else (a colour is only carried over)."""
    return value if value and re.fullmatch(r"[0-9A-Fa-f]{6}", value) else None


def _stored_keys(array, path: Path) -> frozenset[str]:
    """The keys of the array's chunks (or shards) in the store, relative to the array: a
    listing, no data read."""
    from zarr.core.sync import sync

    prefix = f"{array.store_path.path}/" if array.store_path.path else ""

    async def listing() -> frozenset[str]:
        store = array.store_path.store
        return frozenset([key[len(prefix):] async for key in store.list_prefix(prefix)])

    try:
        return sync(listing())
    except Exception as exc:
        raise StackError(f"cannot list the chunks of {path}: {one_line(exc)}") from None


def check_chunks(array, key: tuple, stored: frozenset[str], where: str) -> None:
    """Warn of chunks that ``array[key]`` would read from a store lacking them, and refuse
    when all of them are missing: zarr reads a missing chunk as the fill value without a word,
    and in a microscope image that almost always means an incomplete copy.

    Raises:
        StackError: every chunk of the region missing.
    """
    grid = array.shards or array.chunks
    ranges = [range(k // g, k // g + 1) if isinstance(k, int) else range(math.ceil(n / g))
              for k, g, n in zip(key, grid, array.shape)]
    wanted = [array.metadata.encode_chunk_key(c) for c in itertools.product(*ranges)]
    missing = sum(k not in stored for k in wanted)
    kind = "shards" if array.shards else "chunks"
    if missing and missing == len(wanted):
        raise StackError(f"cannot read {where}: every chunk is missing from the store ({missing} "
                         f"{kind}, zarr would read only the fill value {array.fill_value}); an "
                         "incomplete copy?")
    if missing:
        warnings.warn(f"{where}: {missing} of {len(wanted)} {kind} are missing from the store "
                      f"and read as the fill value {array.fill_value}; the copy may be "
                      "incomplete", stacklevel=2)


def _read_planes(array, key: tuple, z_axis: int) -> np.ndarray:
    """``array[key]``, one Z plane at a time: zarr decodes all the chunks of a read at once,
    so a whole stack in one read would hold its compressed and decoded chunks together."""
    kept = [i for i, k in enumerate(key) if isinstance(k, slice)]
    out = np.empty([array.shape[i] for i in kept], array.dtype)
    position = kept.index(z_axis)
    for z in range(array.shape[z_axis]):
        plane = list(key)
        plane[z_axis] = z
        target = [slice(None)] * out.ndim
        target[position] = z
        out[tuple(target)] = array[tuple(plane)]
    return out


def _metadata(axes: list[dict], dataset: dict, omero: dict, letters: str,
              where: str) -> Metadata:
    scale = [1.0] * len(axes)
    translation = [0.0] * len(axes)
    transforms = "multiscales[0].datasets[0].coordinateTransformations"
    for i, transform in enumerate(_objects(dataset.get("coordinateTransformations"),
                                           transforms, where)):
        kind = transform.get("type")
        if kind in ("scale", "translation") and kind in transform:
            values = _numbers(transform[kind], len(axes), f"{transforms}[{i}].{kind}", where)
            scale, translation = (values, translation) if kind == "scale" else (scale, values)

    def size(letter: str) -> float | None:
        if letter not in letters:
            return None
        i = letters.index(letter)
        return to_micrometres(scale[i], axes[i].get("unit"), default="")

    origin = 0.0
    if "Z" in letters:
        i = letters.index("Z")
        origin = z_origin(translation[i], axes[i].get("unit"), where, "translation",
                          default="")
    channels = omero.get("channels") or []
    return Metadata(size("X"), size("Y"), size("Z"), origin,
                    tuple(c.get("label") for c in channels),
                    tuple(_color(c.get("color")) for c in channels))


def _attributes(array: np.ndarray, metadata: Metadata, version: str, name: str) -> dict:
    """NGFF metadata of one TCYX image."""
    channels = array.shape[1]
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}]
    for letter, size in (("y", metadata.size_y), ("x", metadata.size_x)):
        axes.append({"name": letter, "type": "space"} | ({"unit": "micrometer"} if size else {}))
    scale = [1.0, 1.0, metadata.size_y or 1.0, metadata.size_x or 1.0]
    multiscale = {"name": name, "axes": axes,
                  "datasets": [{"path": "0", "coordinateTransformations": [
                      {"type": "scale", "scale": scale}]}]}
    top = _window_top(array)
    omero = {"channels": [
        {"label": label or f"C{i}", "color": color or "FFFFFF", "active": True,
         "window": {"start": 0.0, "end": top, "min": 0.0, "max": top}}
        for i, (label, color) in enumerate(zip(metadata.names(channels),
                                               metadata.colors(channels)))]}
    if version == "0.5":
        return {"ome": {"version": "0.5", "multiscales": [multiscale], "omero": omero}}
    multiscale["version"] = "0.4"
    return {"multiscales": [multiscale], "omero": omero | {"version": "0.4"}}


def _window_top(array: np.ndarray) -> float:
    """The top of the channels' display window: the type's maximum, or the largest finite
    value of a float image (a gathered NaN stays in the pixels, but JSON has no NaN)."""
    if array.dtype.kind in "iu":
        return float(np.iinfo(array.dtype).max)
    top = float(array.max())
    if math.isfinite(top):
        return top
    finite = array[np.isfinite(array)]
    return float(finite.max()) if finite.size else 1.0


def written_by_stackmff(folder: Path) -> bool:
    """Whether ``folder`` is an OME-Zarr image as :func:`zarr_writer` writes it (a group whose
    one multiscale image has the axes t, c, y, x and the one dataset ``0``), read from its
    metadata alone: only such a folder may be replaced whole by a new output."""
    ome = _group_attributes(folder)
    multiscales = ome.get("multiscales") if isinstance(ome, dict) else None
    if not isinstance(multiscales, list) or len(multiscales) != 1 or "omero" not in ome:
        return False
    image = multiscales[0]
    if not isinstance(image, dict) or not isinstance(image.get("axes"), list):
        return False
    axes = [a.get("name") if isinstance(a, dict) else None for a in image["axes"]]
    datasets = image.get("datasets")
    return (axes == ["t", "c", "y", "x"] and isinstance(datasets, list) and len(datasets) == 1
            and isinstance(datasets[0], dict) and datasets[0].get("path") == "0"
            and (folder / "0").is_dir())


def _group_attributes(folder: Path) -> dict | None:
    """The NGFF keys of a Zarr group as we write it: ``.zgroup`` and ``.zattrs`` (v2, NGFF
    0.4), or ``zarr.json`` with ``attributes.ome`` (v3, NGFF 0.5); ``None`` for anything else."""
    def read(name: str) -> object:
        try:
            return json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    group = read(".zgroup")
    if isinstance(group, dict) and group.get("zarr_format") == 2:
        attributes = read(".zattrs")
        return attributes if isinstance(attributes, dict) else None
    group = read("zarr.json")
    if (isinstance(group, dict) and group.get("zarr_format") == 3
            and group.get("node_type") == "group"):
        attributes = group.get("attributes")
        ome = attributes.get("ome") if isinstance(attributes, dict) else None
        return ome if isinstance(ome, dict) and ome.get("version") == "0.5" else None
    return None


def zarr_writer(array: np.ndarray, metadata: Metadata, version: str = "0.4", name: str = ""):
    """A function that writes a TCYX array as an OME-Zarr image into the folder it is given
    (for :func:`stackmff.io.atomic.write_files_atomically`)."""
    zarr = zarr_module()
    if version not in VERSIONS:
        raise ValueError(f"OME-Zarr version must be one of {VERSIONS}, got {version!r}")

    def write(folder: Path) -> None:
        group = zarr.open_group(str(folder), mode="w", zarr_format=3 if version == "0.5" else 2)
        height, width = array.shape[2:]
        stored = group.create_array("0", shape=array.shape, dtype=array.dtype,
                                    chunks=(1, 1, min(height, 1024), min(width, 1024)))
        stored[...] = array
        group.attrs.update(_attributes(array, metadata, version, name))

    return write
