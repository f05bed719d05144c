"""Arrays with named axes (numpy, Dask or xarray) as microscopy images: their axis letters,
their metadata, and a source that reads one time point at a time (a Dask array is computed per
time point). An xarray ``DataArray`` names its own axes and carries its metadata in
coordinates; :func:`as_dataarray` gives the fused values the same coordinates and
attributes, Z dropped."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stackmff.errors import StackError
from stackmff.microscopy.axes import Metadata, axis_layout, to_micrometres
from stackmff.microscopy.source import Source, check_dtype

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


def array_source(array, axes: str | None, metadata: Metadata | None) -> tuple[Source, str]:
    """An array with named axes as a source of one scene; returns it and the axis letters
    (an xarray ``DataArray`` names its own)."""
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

    return Source(Path(WHERE), layout, 1, metadata, dtype, "array", read), axes


def as_dataarray(fused: np.ndarray, array, axes: str):
    """The fused TCYX values as a DataArray with the input's dimension names, coordinates
    (those of the kept dimensions) and attributes."""
    import xarray

    names = {_letter(d): d for d in array.dims}
    dims = [names.get(a, a.lower()) for a in "TCYX"]
    coords = {d: array.coords[d] for d in dims if d in array.coords}
    return xarray.DataArray(fused, dims=dims, coords=coords, attrs=dict(array.attrs))
