"""The public entry points: prepare a method, fuse a stack, save what it produced, and the
whole file-to-file run that ``stackmff fuse`` is."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stackmff.errors import StackError
from stackmff.io import Stack, expand_inputs, load_stack, write_files_atomically
from stackmff.io.focusmap import confidence_picture, focus_map_picture
from stackmff.io.image import encode_image
from stackmff.io.paths import WRITABLE_SUFFIXES, check_output_paths
from stackmff.methods import Fuser, FusionMethod, get_method, list_methods
from stackmff.result import FusionResult

DEFAULT_METHOD = "depthmap"


def method_names() -> list[str]:
    """Every method ``fuse_stack`` accepts."""
    return [m.name for m in list_methods()]


def prepare_method(method: str = DEFAULT_METHOD, *, halo: str | None = None,
                   **options) -> Fuser:
    """Check ``options`` against the method and load what it needs once (the network's
    weights); the returned fuser fuses any number of stacks.

    Args:
        halo: ``"near-to-far"`` or ``"far-to-near"`` (how the stack runs) to limit halos
            beside near objects (:mod:`stackmff.halo`), for methods that select layers.

    Raises:
        StackError: an unknown method, an option it does not take, or a value out of range.
    """
    entry = check_method(method, halo=halo, **options)
    fuser = entry.prepare(**options)
    return fuser if halo is None else _HaloLimited(fuser, halo)


def check_method(method: str, *, halo: str | None = None, **options) -> FusionMethod:
    """Every check :func:`prepare_method` makes, without loading anything."""
    entry = get_method(method)
    entry.check_options(**options)
    if halo is not None:
        from stackmff.halo import ORDERS

        if halo not in ORDERS:
            raise StackError(f"--halo takes {' or '.join(ORDERS)}, got {halo!r}")
        if not entry.copies_pixels(**options):
            raise StackError(f"--halo edits the focus map, so it needs a method that selects "
                             f"layers (see `stackmff methods`; the network with --blend hard), "
                             f"not --method {method}{_blend_text(options)}")
    return entry


class _HaloLimited:
    """A fuser whose results have their halos limited."""

    def __init__(self, fuser: Fuser, order: str):
        self.fuser, self.order = fuser, order

    def __call__(self, layers: np.ndarray) -> FusionResult:
        from stackmff.halo import limit_result_halos

        return limit_result_halos(layers, self.fuser(layers), self.order)


def _blend_text(options: dict) -> str:
    return f" --blend {options['blend']}" if "blend" in options else ""


def fuse_stack(stack, method: str = DEFAULT_METHOD, *, fuser: Fuser | None = None,
               axes: str | None = None, focus_channel: int | str | None = None,
               metadata=None, **options):
    """Fuse a focus stack into one all-in-focus image.

    Args:
        stack: a :class:`Stack` from :func:`load_stack`, or a float array
            ``(L, H, W[, 3])`` in [0, 1]: numpy, or Dask (fused block by block, each with
            ``margin`` pixels of context, on the active Dask client if there is one). Or a
            microscopy array with named axes (numpy, Dask or an xarray ``DataArray``): see
            ``axes``.
        axes: the letters of a microscopy array's axes, e.g. ``"TCZYX"`` (an xarray
            ``DataArray`` names its own). Z is the focus axis; each time point is a stack,
            fused in the array's dtype; the result is a
            :class:`stackmff.microscopy.MicroscopyResult` (fused ``TCYX``, focus map,
            confidence and heights per T, and the metadata).
        focus_channel: the channel that decides the focus (index, name or ``"mean"``;
            default: the mean for several channels); every channel is taken from the layers
            it chose. Microscopy arrays only.
        metadata: a :class:`stackmff.microscopy.Metadata` (physical sizes, Z origin,
            channel names) for a numpy or Dask array; an xarray ``DataArray`` gives its own.
        method: ``"v3"`` (the network) or a classical method (see :func:`method_names`).
        fuser: a fuser from :func:`prepare_method`, to reuse across stacks (then ``method``
            and ``options`` are not used).
        **options: the method's options; ``v3`` takes ``checkpoint`` (default: the shipped
            model), ``device``, ``tile``, ``margin``, ``precision``, ``global_means``,
            ``native``, ``blend``, ``blend_sigma`` and ``blend_scales`` (see
            :mod:`stackmff.fusion.blend`). The classical methods take none.

    Returns:
        A :class:`FusionResult` with the fused image (float32, [0, 1]) and, where the method
        has them, the focus map and confidence (for a microscopy array, see ``axes``).
    """
    if axes is not None or _module(stack) == "xarray":
        from stackmff.microscopy.arrays import fuse_array

        if fuser is None:
            fuser = prepare_method(method, **options)
        copies = get_method(method).copies_pixels(**options)
        return fuse_array(stack, axes, fuser, copies, method, focus_channel, metadata)
    if focus_channel is not None or metadata is not None:
        raise StackError("focus_channel and metadata apply to arrays with named axes (axes=)")
    if _is_dask_array(stack):
        return _fuse_dask(stack, method, fuser, options)
    layers = stack.layers if isinstance(stack, Stack) else np.asarray(stack)
    if fuser is None:
        fuser = prepare_method(method, **options)
    return fuser(layers)


def _module(value) -> str:
    return type(value).__module__.split(".")[0]


def _is_dask_array(stack) -> bool:
    return _module(stack) == "dask" and hasattr(stack, "chunks")


def _fuse_dask(array, method: str, fuser: Fuser | None, options: dict) -> FusionResult:
    """A Dask array is fused block by block with ``margin`` of context (the network's tile
    margin; the same context for the classical methods): see
    :mod:`stackmff.fusion.dask_tiles`."""
    from stackmff.fusion.dask_tiles import fuse_dask_array
    from stackmff.methods import all_options

    margin = options.get("margin", all_options().get("margin").default)
    entry = get_method(method)
    copies = entry.copies_pixels(**options)
    if fuser is None:
        if "tile" in entry.options:  # each block in one pass: the blocks are the tiles
            options = {**options, "tile": None}
        fuser = prepare_method(method, **options)
    return fuse_dask_array(array, fuser, margin, method, copies)


def index_map_path(focus_map_path: str | Path) -> Path:
    """Where the raw layer indices go next to a focus-map picture: ``<stem>_indices.png``."""
    path = Path(focus_map_path)
    return path.with_name(f"{path.stem}_indices.png")


def output_paths(output: str | Path, focus_map: str | Path | None = None,
                 confidence: str | Path | None = None) -> list[Path]:
    """Every file :func:`save_result` would write for these arguments."""
    paths = [Path(output)]
    if focus_map is not None:
        paths += [Path(focus_map), index_map_path(focus_map)]
    if confidence is not None:
        paths.append(Path(confidence))
    return paths


def check_outputs(output: str | Path, focus_map: str | Path | None = None,
                  confidence: str | Path | None = None, method: str | None = None,
                  inputs: Sequence[Path] = ()) -> list[Path]:
    """Everything about the outputs that can be known before any work: file types, that
    they differ from each other and from the inputs, and that the method makes the maps
    asked for. Returns the paths that will be written."""
    paths = output_paths(output, focus_map, confidence)
    for path in paths:
        if path.suffix.lower() not in WRITABLE_SUFFIXES:
            raise StackError(f"cannot write {path}: unsupported file type "
                             f"{path.suffix or '(none)'!r}; use one of "
                             f"{', '.join(sorted(WRITABLE_SUFFIXES))}")
    check_output_paths(paths, inputs)
    if method is not None and confidence is not None and not get_method(method).confidence:
        raise StackError(f"method {method!r} produces no confidence map")
    return paths


def save_result(result: FusionResult, stack: Stack, output: str | Path,
                focus_map: str | Path | None = None,
                confidence: str | Path | None = None) -> list[Path]:
    """Write the fused image in the stack's bit depth, and optionally its maps.

    Nothing is written if any output is one of the stack's input files, or if the method
    has no focus map / confidence and one was asked for. All files appear together
    (temporary files, then renames).

    Returns:
        The paths written.
    """
    paths = check_outputs(output, focus_map, confidence, inputs=stack.paths)
    if focus_map is not None and result.focus_map is None:
        raise StackError(f"method {result.method!r} produces no focus map")
    if confidence is not None and result.confidence is None:
        raise StackError(f"method {result.method!r} produces no confidence map")
    files = {paths[0]: encode_image(stack.to_output(result.fused), paths[0])}
    if focus_map is not None:
        picture = focus_map_picture(result.focus_map, len(stack))
        files[Path(focus_map)] = encode_image(picture, focus_map)
        indices = index_map_path(focus_map)
        files[indices] = encode_image(result.focus_map.astype(np.uint16), indices)
    if confidence is not None:
        files[Path(confidence)] = encode_image(confidence_picture(result.confidence), confidence)
    write_files_atomically(files)
    return list(files)


@dataclass
class FuseReport:
    """What :func:`fuse_files` did: the stack it read, the files it wrote, where time went."""

    layers: int
    width: int
    height: int
    method: str
    written: list[Path]
    seconds: dict[str, float] = field(default_factory=dict)
    stacks: int = 1       # microscopy: scenes x time points
    channels: int = 1
    scenes: int = 1


def fuse_files(inputs: str | Path | Sequence[str | Path], output: str | Path,
               method: str = DEFAULT_METHOD, *, focus_map: str | Path | None = None,
               confidence: str | Path | None = None, align: dict | None = None,
               fuser: Fuser | None = None, focus_channel: int | str | None = None,
               height_map: str | Path | None = None, **options) -> FuseReport:
    """Files in, files out: check everything, load, optionally align, fuse, write.

    Every check that does not need the pixels (method, options, output types and paths)
    runs before the stack is read, so bad arguments cost nothing and write nothing.

    One microscopy file (OME-TIFF, OME-Zarr, an ImageJ hyperstack) is fused stack by stack
    (every scene and time point) into a TCYX ``.ome.tif`` or ``.ome.zarr`` in its own dtype
    (see docs/microscopy.md).

    Args:
        align: ``None`` to fuse as loaded, or keyword arguments of
            :func:`stackmff.registration.align_stack` (``{}`` for its defaults).
        fuser: a prepared method to reuse across calls (see :func:`prepare_method`).
        focus_channel: microscopy: the channel (index, name, ``"mean"``) that decides.
        height_map: microscopy: a ``.tif`` for float32 heights in µm per time point.
    """
    started = time.perf_counter()
    inputs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if _microscopy_input(inputs, focus_channel, height_map, align):
        from stackmff.microscopy.files import Outputs, fuse_microscopy_file

        check_method(method, **options)
        outputs = Outputs(Path(output), _path(focus_map), _path(confidence), _path(height_map))
        done = fuse_microscopy_file(inputs[0], outputs, method, fuser, focus_channel, options)
        return FuseReport(done.layers, done.width, done.height, method, done.written,
                          done.seconds, done.stacks, done.channels, done.scenes)
    paths = expand_inputs(inputs)
    if not paths:
        raise StackError(f"no images found in {', '.join(map(str, inputs))}")
    check_outputs(output, focus_map, confidence, method, inputs=paths)
    if fuser is None:
        fuser = prepare_method(method, **options)
    prepared = time.perf_counter()
    # as the files' integers (a quarter of float32's memory for 8 bit): every method takes
    # them; registration wants floats
    stack = load_stack(paths, match_sizes=align is not None, floats=align is not None)
    loaded = time.perf_counter()
    seconds = {"prepare": prepared - started, "load": loaded - prepared}
    if align is not None:
        from stackmff.registration import align_stack

        alignment = align_stack(stack.layers, **align)
        stack = dataclasses.replace(stack, layers=alignment.layers,
                                    paths=[stack.paths[k] for k in alignment.indices])
        seconds["align"] = time.perf_counter() - loaded
    fusing = time.perf_counter()
    result = fuser(stack.layers)
    written_at = time.perf_counter()
    seconds["fuse"] = written_at - fusing
    written = save_result(result, stack, output, focus_map, confidence)
    seconds["write"] = time.perf_counter() - written_at
    height, width = stack.layers.shape[1:3]
    return FuseReport(len(stack), width, height, method, written, seconds)


def _path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)


def _microscopy_input(inputs: list, focus_channel, height_map, align) -> bool:
    """Whether the inputs are one microscopy file; the microscopy options need one."""
    from stackmff.microscopy.source import is_microscopy_file

    single = len(inputs) == 1 and not glob_like(inputs[0])
    microscopy = single and is_microscopy_file(inputs[0])
    asked = [name for name, value in (("--focus-channel", focus_channel),
                                      ("--height-map", height_map)) if value is not None]
    if asked and not microscopy:
        path = Path(inputs[0]) if single else None
        if path is None or not path.is_file():
            verb = "take" if len(asked) > 1 else "takes"
            raise StackError(f"{' and '.join(asked)} {verb} one microscopy file (OME-TIFF, "
                             "OME-Zarr, an ImageJ hyperstack or a multi-page TIFF)")
        microscopy = True  # a plain multi-page TIFF: its pages are the Z planes
    if microscopy and align is not None:
        raise StackError("--align does not apply to microscopy files")
    return microscopy


def glob_like(value: str | Path) -> bool:
    import glob

    return not Path(value).exists() and glob.has_magic(str(value))
