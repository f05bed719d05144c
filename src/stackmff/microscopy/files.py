"""``stackmff fuse`` on a microscopy file: check every output, fuse each (scene, T) stack in
turn, and write the fused TCYX image, the height map and the maps together (or nothing)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stackmff.errors import StackError
from stackmff.io.atomic import write_files_atomically
from stackmff.io.focusmap import confidence_picture, focus_map_picture
from stackmff.io.image import encode_image
from stackmff.io.paths import TIFF_SUFFIXES, WRITABLE_SUFFIXES, check_output_paths
from stackmff.methods import Fuser, get_method
from stackmff.microscopy.axes import resolve_channel
from stackmff.microscopy.fuse import check_dtype, fuse_czyx, heights
from stackmff.microscopy.ome_tiff import encode_ome_tiff
from stackmff.microscopy.source import Source, is_zarr, open_source
from stackmff.runtime.allocator import release_free_memory


def _is_tiff(path: Path) -> bool:
    return path.suffix.lower() in TIFF_SUFFIXES


@dataclass
class Outputs:
    """Where each product goes; ``None`` for what was not asked for."""

    image: Path
    focus_map: Path | None = None
    confidence: Path | None = None
    height_map: Path | None = None

    def indices(self) -> Path | None:
        if self.focus_map is None:
            return None
        return self.focus_map.with_name(f"{self.focus_map.stem}_indices{self.focus_map.suffix}")

    def all(self) -> list[Path]:
        return [p for p in (self.image, self.focus_map, self.indices(), self.confidence,
                            self.height_map) if p is not None]


def check_outputs(outputs: Outputs, source: Source, method: str) -> None:
    """Everything about the outputs that the header decides: before any pixel is read."""
    stacks = source.scenes * source.shape[0]
    channels = source.shape[1]
    image = outputs.image
    if is_zarr(image):
        if source.scenes > 1:
            raise StackError(f"{source.path} holds {source.scenes} scenes: write them to an "
                             ".ome.tif (one series per scene)")
    elif not _is_tiff(image):
        if image.suffix.lower() not in WRITABLE_SUFFIXES:
            raise StackError(f"cannot write {image}: use .ome.tif or .ome.zarr for a "
                             "microscopy image")
        if stacks > 1 or channels > 1 or source.dtype not in (np.uint8, np.uint16):
            raise StackError(f"cannot write {image}: {source.path} gives {stacks} image(s) of "
                             f"{channels} {source.dtype} channel(s); use .ome.tif or .ome.zarr")
    for name, path in (("--focus-map", outputs.focus_map), ("--confidence", outputs.confidence)):
        if path is None:
            continue
        if path.suffix.lower() not in WRITABLE_SUFFIXES:
            raise StackError(f"cannot write {path}: unsupported file type {path.suffix!r}")
        if stacks > 1 and not _is_tiff(path):
            raise StackError(f"{name} {path}: {source.path} holds {stacks} stacks (scenes x "
                             "time points); use a .tif, which gets one page per stack")
    if outputs.height_map is not None and not _is_tiff(outputs.height_map):
        raise StackError(f"--height-map {outputs.height_map}: heights are float32, "
                         "write them to a .tif")
    check_output_paths(outputs.all(), [source.path], folders={image} if is_zarr(image) else ())
    if outputs.confidence is not None and not get_method(method).confidence:
        raise StackError(f"method {method!r} produces no confidence map")


@dataclass
class Products:
    """Every stack's results, indexed ``[scene, t]``."""

    fused: np.ndarray
    focus_map: np.ndarray
    confidence: np.ndarray | None


def fuse_source(source: Source, fuser: Fuser, selects: bool, focus: int | str,
                method: str) -> Products:
    """Fuse every (scene, T) stack, one in memory at a time."""
    scenes, (times, channels, _, height, width) = source.scenes, source.shape
    fused = np.empty((scenes, times, channels, height, width), source.dtype)
    focus_map = np.empty((scenes, times, height, width), np.uint16)
    confidence = None
    for scene in range(scenes):
        for t in range(times):
            stack = source.read(scene, t)
            fused[scene, t], focus_map[scene, t], certainty = fuse_czyx(
                stack, fuser, selects, focus, method)
            del stack
            release_free_memory()  # the next stack reuses pages, not the holes of this one
            if certainty is not None:
                if confidence is None:
                    confidence = np.zeros(focus_map.shape, np.float32)
                confidence[scene, t] = certainty
    return Products(fused, focus_map, confidence)


def _pages(encode_page, pictures: np.ndarray, path: Path) -> bytes | None:
    """One picture, or a TIFF with one page per stack."""
    flat = pictures.reshape((-1,) + pictures.shape[2:])
    if len(flat) == 1:
        return encode_image(encode_page(flat[0]), path)
    import io

    import tifffile

    buffer = io.BytesIO()
    images = np.stack([encode_page(p) for p in flat])
    tifffile.imwrite(buffer, images, photometric="rgb" if images.ndim == 4 else "minisblack",
                     compression="zlib")
    return buffer.getvalue()


def encode_outputs(products: Products, source: Source, outputs: Outputs) -> dict:
    """The bytes (or folder writer) of every output."""
    files: dict = {}
    metadata, image = source.metadata, outputs.image
    if is_zarr(image):
        from stackmff.microscopy.ome_zarr import zarr_writer

        files[image] = zarr_writer(products.fused[0], metadata, source.version or "0.4",
                                   source.path.name)
    elif _is_tiff(image):
        files[image] = encode_ome_tiff(list(products.fused), "TCYX", metadata)
    else:
        files[image] = encode_image(products.fused[0, 0, 0], image)
    layers = source.shape[2]
    if outputs.focus_map is not None:
        files[outputs.focus_map] = _pages(lambda m: focus_map_picture(m, layers),
                                          products.focus_map, outputs.focus_map)
        files[outputs.indices()] = _pages(lambda m: m, products.focus_map, outputs.indices())
    if outputs.confidence is not None:
        files[outputs.confidence] = _pages(confidence_picture, products.confidence,
                                           outputs.confidence)
    if outputs.height_map is not None:
        values, _ = heights(products.focus_map, metadata, str(source.path))
        files[outputs.height_map] = encode_ome_tiff(list(values), "TYX", metadata)
    return files


@dataclass
class MicroscopyReport:
    """What :func:`fuse_microscopy_file` did (the fields of :class:`stackmff.api.FuseReport`)."""

    layers: int
    width: int
    height: int
    method: str
    written: list[Path]
    seconds: dict[str, float]
    stacks: int = 1
    channels: int = 1
    scenes: int = 1


def fuse_microscopy_file(path: str | Path, outputs: Outputs, method: str, fuser: Fuser | None,
                         focus_channel: int | str | None, options: dict) -> MicroscopyReport:
    """Open, check, fuse every stack, write everything atomically."""
    started = time.perf_counter()
    with open_source(path) as source:
        check_dtype(source.dtype, str(source.path))
        check_outputs(outputs, source, method)
        times, channels, layers, height, width = source.shape
        focus = resolve_channel(focus_channel, source.metadata, channels, str(source.path))
        if fuser is None:
            from stackmff.api import prepare_method

            fuser = prepare_method(method, **options)
        prepared = time.perf_counter()
        products = fuse_source(source, fuser, get_method(method).copies_pixels(**options), focus,
                               method)
        fused_at = time.perf_counter()
        files = encode_outputs(products, source, outputs)
        write_files_atomically(files)
        seconds = {"prepare": prepared - started, "fuse": fused_at - prepared,
                   "write": time.perf_counter() - fused_at}
        return MicroscopyReport(layers, width, height, method, list(files), seconds,
                                source.scenes * times, channels, source.scenes)
