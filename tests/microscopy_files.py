"""Tiny microscopy files with known focus patterns, made on the fly for the tests: OME-TIFF,
ImageJ hyperstacks and OME-Zarr (written here with zarr itself, from the NGFF keys)."""

from __future__ import annotations

import cv2
import numpy as np
import tifffile

from stackmff.testing import texture

T, C, Z, H, W = 2, 2, 5, 64, 80
NAMES = ["DAPI", "GFP"]
COLORS = ["0000FF", "00FF00"]


def vertical_bands(height: int, width: int, layers: int, seed: int) -> np.ndarray:
    order = np.random.default_rng(seed).permutation(layers)
    return order[(np.arange(width) * layers) // width][None, :].repeat(height, axis=0)


def horizontal_bands(height: int, width: int, layers: int, seed: int) -> np.ndarray:
    order = np.random.default_rng(seed).permutation(layers)
    return order[(np.arange(height) * layers) // height][:, None].repeat(width, axis=1)


def render(truth: np.ndarray, focus_map: np.ndarray, layers: int) -> np.ndarray:
    """Layer k is sharp where ``focus_map == k``, blurred by the distance elsewhere."""
    blurred = [truth] + [cv2.GaussianBlur(truth, (0, 0), 1.6 * d) for d in range(1, layers)]
    stack = np.empty((layers,) + truth.shape, np.float32)
    for k in range(layers):
        distance = np.abs(focus_map - k)
        for d in range(layers):
            stack[k][distance == d] = blurred[d][distance == d]
    return stack


def hyperstack() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(TCZYX uint16, channel-0 maps (T, Y, X), channel-1 maps)``: channel 0 focuses in
    vertical bands, channel 1 in horizontal bands, in other orders per time point."""
    data = np.empty((T, C, Z, H, W), np.uint16)
    maps = [np.empty((T, H, W), np.int64) for _ in range(C)]
    for t in range(T):
        maps[0][t] = vertical_bands(H, W, Z, seed=10 + t)
        maps[1][t] = horizontal_bands(H, W, Z, seed=20 + t)
        for c in range(C):
            layers = render(texture(H, W, False, seed=100 * t + c), maps[c][t], Z)
            data[t, c] = np.rint(layers * 60000).astype(np.uint16)
    return data, maps[0], maps[1]


def write_ome_tiff(path, data: np.ndarray, axes: str = "TCZYX", size_z: float | None = 0.5,
                   z_unit: str = "µm", position_z: float | None = None, names=NAMES) -> None:
    metadata = {"axes": axes, "PhysicalSizeX": 0.25, "PhysicalSizeXUnit": "µm",
                "PhysicalSizeY": 0.25, "PhysicalSizeYUnit": "µm"}
    if size_z is not None:
        metadata |= {"PhysicalSizeZ": size_z, "PhysicalSizeZUnit": z_unit}
    if names:
        metadata["Channel"] = {"Name": names[:data.shape[axes.index("C")]]}
    if position_z is not None:
        planes = int(np.prod([n for a, n in zip(axes, data.shape) if a not in "YX"]))
        metadata["Plane"] = {"PositionZ": [position_z] * planes}
    tifffile.imwrite(path, data, ome=True, photometric="minisblack", metadata=metadata)


def write_ome_zarr(path, data: np.ndarray, version: str = "0.4", names=NAMES,
                   axes=("t", "c", "z", "y", "x"), translation_z: float = 0.0) -> None:
    """An OME-Zarr image as the NGFF specification lays it out."""
    import zarr

    group = zarr.open_group(str(path), mode="w", zarr_format=3 if version == "0.5" else 2)
    group.create_array("0", shape=data.shape, dtype=data.dtype, chunks=(1, 1) + data.shape[2:])
    group["0"][...] = data
    kinds = {"t": "time", "c": "channel"}
    described = [{"name": a, "type": kinds.get(a, "space")}
                 | ({"unit": "micrometer"} if a in "zyx" else {}) for a in axes]
    scale = [{"z": 0.5, "y": 0.25, "x": 0.25}.get(a, 1.0) for a in axes]
    shift = [translation_z if a == "z" else 0.0 for a in axes]
    multiscale = {"axes": described, "datasets": [{"path": "0", "coordinateTransformations": [
        {"type": "scale", "scale": scale}, {"type": "translation", "translation": shift}]}]}
    omero = {"channels": [{"label": n, "color": c} for n, c in zip(names, COLORS)]}
    if version == "0.5":
        group.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale], "omero": omero}
    else:
        group.attrs.update({"multiscales": [multiscale | {"version": "0.4"}], "omero": omero})


def ome_pixels(path) -> dict:
    """The attributes of the first OME ``Pixels`` element, and the channel names."""
    from xml.etree import ElementTree

    with tifffile.TiffFile(path) as tif:
        pixels = ElementTree.fromstring(tif.ome_metadata).find("{*}Image/{*}Pixels")
    return dict(pixels.attrib) | {"names": [c.get("Name") for c in pixels.findall("{*}Channel")]}
