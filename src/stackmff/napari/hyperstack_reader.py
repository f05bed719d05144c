"""napari reader for microscopy files (OME-TIFF, OME-Zarr, ImageJ hyperstacks): one image layer
per channel, Z as the slider axis, T kept as a leading axis.

The file is read through :func:`stackmff.microscopy.open_source` (never ``load_stack``, which
would mix channel and time pages into layers). The first scene is opened. Every channel layer
carries the file, its channel and a group id in ``metadata["stackmff"]["microscopy"]``, so that
the fuse widget finds the channels of one file and fuses them together.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from stackmff.errors import StackError
from stackmff.io.stack import available_memory
from stackmff.microscopy.axes import Metadata
from stackmff.microscopy.source import VENDOR_FORMATS, is_microscopy_file, open_source, stem

LayerData = tuple[np.ndarray, dict, str]
NAMED_COLOURS = {"FF0000": "red", "00FF00": "green", "0000FF": "blue", "FF00FF": "magenta",
                 "00FFFF": "cyan", "FFFF00": "yellow", "FFFFFF": "gray"}
DEFAULT_COLOURS = ("magenta", "green", "cyan", "yellow", "red", "blue")


def is_microscopy(path) -> bool:
    """A single OME-TIFF, OME-Zarr or ImageJ hyperstack (vendor formats are left to others)."""
    if not isinstance(path, (str, Path)):
        return False
    path = Path(path)
    try:
        return path.suffix.lower() not in VENDOR_FORMATS and is_microscopy_file(path)
    except OSError:
        return False


def read_microscopy(path: str | Path) -> list[LayerData]:
    """One image layer per channel: ``(Z, Y, X)``, or ``(T, Z, Y, X)`` for several time points,
    in the stored pixel type, scaled in µm where the file gives physical sizes.

    Raises:
        StackError: what :func:`open_source` refuses, or a scene too big for the memory
            (``stackmff fuse`` reads such files one stack at a time).
    """
    with open_source(path) as source:
        times, channels, planes, height, width = source.shape
        needed = times * channels * planes * height * width * source.dtype.itemsize
        available = available_memory()
        if available is not None and needed > available:
            raise StackError(f"{source.path} needs about {needed / 1e9:.1f} GB of memory, but "
                             f"only {available / 1e9:.1f} GB is available: fuse it with "
                             "`stackmff fuse`, which reads one stack at a time")
        data = np.stack([source.read(0, t) for t in range(times)])  # (T, C, Z, Y, X)
        metadata, scenes, name = source.metadata, source.scenes, stem(source.path.name)
    if times == 1:
        data = data[0]
    group = uuid.uuid4().hex
    names, colours = metadata.names(channels), metadata.colors(channels)
    z_step = metadata.size_z or 1.0
    scale = (1.0,) * (times > 1) + (z_step, metadata.size_y or 1.0, metadata.size_x or 1.0)
    translate = (0.0,) * (times > 1) + (metadata.z_origin if metadata.size_z else 0.0, 0.0, 0.0)
    shared = {"path": str(Path(path)), "group": group, "channels": channels, "times": times,
              "scenes": scenes, "names": list(names), "sizes": [metadata.size_x,
              metadata.size_y, metadata.size_z], "z_origin": metadata.z_origin,
              "colors": list(colours)}
    layers = []
    for c in range(channels):
        label = names[c] or f"C{c}"
        info = shared | {"channel": c}
        kwargs = {"name": f"{name} {label}" if channels > 1 else name, "scale": scale,
                  "translate": translate, "blending": "additive" if channels > 1 else None,
                  "colormap": _colormap(colours[c], c, channels),
                  "metadata": {"stackmff": {"paths": [str(path)], "microscopy": info}}}
        channel = data[:, c] if times > 1 else data[c]
        layers.append((channel, {k: v for k, v in kwargs.items() if v is not None}, "image"))
    return layers


def layer_metadata(info: dict) -> Metadata:
    """The :class:`Metadata` that a channel layer's ``microscopy`` entry describes."""
    size_x, size_y, size_z = info.get("sizes", (None, None, None))
    return Metadata(size_x, size_y, size_z, float(info.get("z_origin", 0.0)),
                    tuple(info.get("names", ())), tuple(info.get("colors", ())))


def _colormap(colour: str | None, index: int, channels: int):
    if colour is None:
        return "gray" if channels == 1 else DEFAULT_COLOURS[index % len(DEFAULT_COLOURS)]
    colour = colour.upper()
    if colour in NAMED_COLOURS:
        return NAMED_COLOURS[colour]
    rgb = [int(colour[i:i + 2], 16) / 255.0 for i in (0, 2, 4)]
    return {"colors": [[0.0, 0.0, 0.0, 1.0], rgb + [1.0]], "name": f"#{colour}"}
