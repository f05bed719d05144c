"""An opened microscopy image: its metadata, and one (scene, T) stack read at a time.

Readers open a file's header only; :meth:`Source.read` decodes the planes of one stack, so a
file far larger than the memory is fused stack by stack. Vendor formats that no reader here
understands are named with the package that reads them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stackmff.errors import StackError
from stackmff.io.tiff import TIFF_MAGIC
from stackmff.microscopy.axes import AxisLayout, Metadata

# suffix -> (format, the package that reads it)
VENDOR_FORMATS = {
    ".czi": ("Zeiss CZI", "bioio-czi"),
    ".nd2": ("Nikon ND2", "bioio-nd2"),
    ".lif": ("Leica LIF", "bioio-lif"),
    ".oib": ("Olympus OIB", "bioio-bioformats"),
    ".oif": ("Olympus OIF", "bioio-bioformats"),
    ".vsi": ("Olympus VSI", "bioio-bioformats"),
    ".ims": ("Imaris", "bioio-imaris"),
    ".dv": ("DeltaVision", "bioio-dv"),
    ".lsm": ("Zeiss LSM", "tifffile (read as TIFF; rename to .tif)"),
}
EXTRA = "pip install 'stackmff[microscopy]'"


@dataclass
class Source:
    """A microscopy image opened for reading.

    Attributes:
        path: the file or folder.
        layout: the axes of each scene (all scenes share one shape).
        scenes: how many scenes (positions) it holds; each (scene, T) is one stack.
        metadata: physical sizes, Z origin, channel names and colours.
        dtype: the stored pixel type; outputs keep it.
        kind: ``"ome-tiff"``, ``"imagej"``, ``"tiff"`` or ``"ome-zarr"``.
        version: the OME-Zarr version read (``"0.4"``, ``"0.5"``), else ``None``.
    """

    path: Path
    layout: AxisLayout
    scenes: int
    metadata: Metadata
    dtype: np.dtype
    kind: str
    reader: Callable[[int, int], np.ndarray] = field(repr=False)
    closer: Callable[[], None] = field(default=lambda: None, repr=False)
    version: str | None = None

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        """``(T, C, Z, Y, X)`` of one scene."""
        return self.layout.tczyx

    def read(self, scene: int, t: int) -> np.ndarray:
        """The stack at (scene, T) as ``(C, Z, Y, X)`` in the stored dtype."""
        return self.reader(scene, t)

    def close(self) -> None:
        self.closer()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def stem(name: str) -> str:
    """A microscopy file's name without its format suffix: ``plate.ome.tif`` -> ``plate``."""
    lower = name.lower()
    for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr", ".tiff", ".tif", ".zarr"):
        if lower.endswith(suffix) and len(lower) > len(suffix):
            return name[:-len(suffix)]
    return name


def is_zarr(path: Path) -> bool:
    """An OME-Zarr image or store: a ``.zarr`` path, or a folder with Zarr metadata."""
    return path.name.lower().endswith(".zarr") or (
        path.is_dir() and any((path / name).is_file() for name in (".zattrs", "zarr.json")))


def is_microscopy_file(path: str | Path) -> bool:
    """Whether a path goes to the microscopy reader: OME-Zarr, OME-TIFF, an ImageJ
    hyperstack with channels or time points, or a vendor format (refused with a hint)."""
    path = Path(path)
    if is_zarr(path) or path.suffix.lower() in VENDOR_FORMATS:
        return True
    if not path.is_file():
        return False
    from stackmff.microscopy.ome_tiff import is_hyperstack

    try:
        with path.open("rb") as handle:
            if handle.read(4) not in TIFF_MAGIC:
                return False
    except OSError:
        return False
    return is_hyperstack(path)


def open_source(path: str | Path) -> Source:
    """Open a microscopy image (header only).

    Raises:
        StackError: a missing file, a vendor format, OME-Zarr without the ``microscopy``
            extra, a damaged file, or axes that are not a focus stack.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in VENDOR_FORMATS:
        name, package = VENDOR_FORMATS[suffix]
        raise StackError(f"cannot read {path}: {name} files are not read by stackmff; "
                         f"convert it to OME-TIFF (bfconvert, Fiji) or read it with {package} "
                         "and pass the array to stackmff.fuse_stack(..., axes=...)")
    if not path.exists():
        raise StackError(f"no such file or folder: {path}")
    if is_zarr(path):
        from stackmff.microscopy.ome_zarr import open_ome_zarr

        return open_ome_zarr(path)
    from stackmff.microscopy.ome_tiff import open_tiff

    return open_tiff(path)


def check_dtype(dtype: np.dtype, where: str) -> None:
    """Fused outputs keep the stored type: integers or floats only."""
    if dtype.kind not in "iuf":
        raise StackError(f"{where}: unsupported pixel type {dtype} (need integers or floats)")
