"""``fuse_stack`` on an array with named axes (numpy, Dask or xarray): the same stack-by-stack
fusion as for files, one time point in memory at a time (a Dask array is computed per time
point). An xarray ``DataArray`` names its own axes and carries its metadata in coordinates;
the result is then a ``DataArray`` with the same coordinates and attributes, Z dropped."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stackmff.errors import StackError
from stackmff.methods import Fuser
from stackmff.microscopy.axes import Metadata, axis_layout, resolve_channel, to_micrometres
from stackmff.microscopy.files import fuse_source
from stackmff.microscopy.fuse import MicroscopyResult, check_dtype, heights
from stackmff.microscopy.source import Source

_NAMES = {"time": "T", "channel": "C", "channels": "C", "ch": "C"}
WHERE = "the array"


def is_xarray(array) -> bool:
    return type(array).__module__.split(".")[0] == "xarray" and hasattr(array, "dims")


def _letter(dim: object) -> str:
    name = str(dim).lower()
    return name.upper() if name in ("t", "c", "z", "y", "x") else _NAMES.get(name, "?")


def _step(coordinate) -> float | None:
    values = np.asarray(coordinate.values)
    if values.size < 2 or values.dtype.kind not in "iuf":
        return None
    unit = coordinate.attrs.get("units", coordinate.attrs.get("unit"))
    return to_micrometres(float(values[1] - values[0]), unit)


def xarray_metadata(array) -> Metadata:
    """Pixel sizes and Z origin from evenly spaced x/y/z coordinates (µm unless their
    ``units`` say otherwise), channel names from the channel coordinate."""
    found: dict[str, object] = {}
    for dim in array.dims:
        if dim in array.coords:
            found[_letter(dim)] = array.coords[dim]
    sizes = {a: _step(found[a]) if a in found else None for a in "XYZ"}
    origin = 0.0
    if "Z" in found and sizes["Z"] is not None:
        z = found["Z"]
        origin = to_micrometres(1.0, z.attrs.get("units", z.attrs.get("unit"))) * float(
            z.values[0])
    names = ()
    if "C" in found and np.asarray(found["C"].values).dtype.kind in "UO":
        names = tuple(str(v) for v in found["C"].values)
    return Metadata(sizes["X"], sizes["Y"], sizes["Z"], origin, names)


def fuse_array(array, axes: str | None, fuser: Fuser, selects: bool, method: str,
               focus_channel: int | str | None = None,
               metadata: Metadata | None = None) -> MicroscopyResult:
    """Fuse every time point of an array with named axes."""
    xarray = is_xarray(array)
    if axes is None:
        if not xarray:
            raise StackError("axes must name every dimension, e.g. axes='TCZYX'")
        axes = "".join(_letter(d) for d in array.dims)
    if metadata is None:
        metadata = xarray_metadata(array) if xarray else Metadata()
    data = array.data if xarray else array
    if not hasattr(data, "shape") or not hasattr(data, "dtype"):
        data = np.asarray(data)
    layout = axis_layout(axes, data.shape, WHERE)
    dtype = np.dtype(data.dtype)
    check_dtype(dtype, WHERE)

    def read(scene: int, t: int) -> np.ndarray:
        return layout.to_czyx(np.asarray(data[layout.key(t)]))

    source = Source(Path(WHERE), layout, 1, metadata, dtype, "array", read)
    focus = resolve_channel(focus_channel, metadata, source.shape[1], WHERE)
    products = fuse_source(source, fuser, selects, focus, method)
    values, in_um = heights(products.focus_map[0], metadata, WHERE, warn=False)
    confidence = None if products.confidence is None else products.confidence[0]
    fused = products.fused[0]
    if xarray:
        fused = _as_dataarray(fused, array, axes)
    return MicroscopyResult(fused, products.focus_map[0], confidence, values, metadata, method,
                            in_um)


def _as_dataarray(fused: np.ndarray, array, axes: str):
    """The fused TCYX values as a DataArray with the input's dimension names, coordinates
    (those of the kept dimensions) and attributes."""
    import xarray

    names = {_letter(d): d for d in array.dims}
    dims = [names.get(a, a.lower()) for a in "TCYX"]
    coords = {d: array.coords[d] for d in dims if d in array.coords}
    return xarray.DataArray(fused, dims=dims, coords=coords, attrs=dict(array.attrs))
