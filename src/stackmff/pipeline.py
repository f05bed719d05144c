"""The one path from inputs to outputs: prepare the method once, open the inputs as a source of
(scene, time point) stacks, check the output plan, fuse each stack, write everything together.

A folder, a glob, a list of files or a plain multi-page TIFF is a source of one stack; an
OME-TIFF, OME-Zarr or ImageJ hyperstack (and a numpy, Dask or xarray array with named axes)
is a source of one stack per scene and time point, each channel gathered with the focus
channel's map (:mod:`stackmff.channel_rule`). Camera files (RAW, HEIC) are image files too: a
RAW stack is developed with one set of settings, decided on a perceptual view when developed
linear, and its fused image carries a profile and one layer's metadata like any photograph's. Every front end (the CLI's ``fuse``, ``batch``,
napari) comes through here; the file formats are read and written by :mod:`stackmff.io` and
:mod:`stackmff.microscopy`, the products are named, checked and encoded by
:mod:`stackmff.outputs`.
"""

from __future__ import annotations

import dataclasses
import glob
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stackmff.errors import StackError
from stackmff.io import FusionWork, Stack, expand_inputs, load_stack, write_files_atomically
from stackmff.io.colour import colour_space as check_colour_space
from stackmff.io.colour import linear_from_perceptual, perceptual
from stackmff.io.image import SOFTWARE
from stackmff.io.metadata import FusionRecord, carries_metadata
from stackmff.io.pixels import to_float
from stackmff.methods import Fuser, FusionMethod, get_method
from stackmff.microscopy.axes import Metadata, check_heights, heights, resolve_channel
from stackmff.microscopy.source import Source, check_dtype, is_microscopy_file
from stackmff.outputs import (
    MeshOptions,
    Microscopy,
    OutputPlan,
    Photo,
    Products,
    Target,
    skip_own_outputs,
)
from stackmff.result import FusionResult, MicroscopyResult
from stackmff.runtime.allocator import release_free_memory
from stackmff.stack_ops import gather

DEFAULT_METHOD = "depthmap"


def check_method(method: str, **options) -> FusionMethod:
    """The method's entry, once its options are checked; nothing is loaded."""
    entry = get_method(method)
    entry.check_options(**options)
    return entry


def prepare_method(method: str = DEFAULT_METHOD, **options) -> Fuser:
    """Check ``options`` against the method and load what it needs once (the network's
    weights); the returned fuser fuses any number of stacks.

    Raises:
        StackError: an unknown method, an option it does not take, or a value out of range.
    """
    return check_method(method, **options).prepare(**options)


def check_halo(halo: str | None, entry: FusionMethod, options: dict,
               prefer: str | None = None) -> None:
    """``halo`` (``"near-to-far"`` or ``"far-to-near"``: how the stack runs) and ``prefer``
    (``"near"`` or ``"far"``) edit the focus map after the method, so they need a method whose
    pixels are the layers its map names."""
    if halo is not None:
        from stackmff.retouch import ORDERS

        if halo not in ORDERS:
            raise StackError(f"--halo takes {' or '.join(ORDERS)}, got {halo!r}")
    if prefer is not None:
        from stackmff.retouch.ties import check_side

        check_side(prefer)
    for flag, value in (("--halo", halo), ("--prefer", prefer)):
        if value is not None and not entry.copies_pixels(**options):
            blend = f" --blend {options['blend']}" if "blend" in options else ""
            raise StackError(f"{flag} edits the focus map, so it needs a method that selects "
                             f"layers (see `stackmff methods`; the network with --blend "
                             f"hard), not --method {entry.name}{blend}")


def with_halo(fuser: Fuser, halo: str | None, prefer: str | None = None) -> Fuser:
    """The fuser, followed by the steps that edit its map when asked for: the near or far
    sharp layer (:mod:`stackmff.retouch.ties`), then the halo limit
    (:mod:`stackmff.retouch.halo`)."""
    if prefer is not None:
        fuser = _Preferring(fuser, prefer)
    return fuser if halo is None else _HaloLimited(fuser, halo)


class Preparing:
    """A method prepared on a thread of its own while the stack is read: for the network,
    importing torch and reading the weights (1 to 1.5 s) overlap decoding the files. Called,
    it waits for the method (an error in preparing it is raised there, before anything is
    written); :meth:`ready` does the same and tells how long it waited."""

    def __init__(self, prepare: Callable[[], Fuser]) -> None:
        self._fuser: Fuser | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(prepare,), daemon=True,
                                        name="stackmff-prepare")
        self._thread.start()

    def _run(self, prepare: Callable[[], Fuser]) -> None:
        try:
            self._fuser = prepare()
        except BaseException as error:  # raised where the method is used
            self._error = error

    def settle(self) -> None:
        self._thread.join()

    def ready(self) -> tuple[Fuser, float]:
        waiting = time.perf_counter()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._fuser, time.perf_counter() - waiting

    def __call__(self, layers: np.ndarray) -> FusionResult:
        return self.ready()[0](layers)


def ready(fuser: Fuser, seconds: dict) -> Fuser:
    """The method itself once it is prepared; the wait counts as preparing it."""
    if isinstance(fuser, Preparing):
        fuser, waited = fuser.ready()
        seconds["prepare"] = seconds.get("prepare", 0.0) + waited
    return fuser


class _HaloLimited:
    """A fuser whose results have their halos limited."""

    def __init__(self, fuser: Fuser, order: str):
        self.fuser, self.order = fuser, order

    def __call__(self, layers: np.ndarray) -> FusionResult:
        from stackmff.retouch import limit_result_halos

        return limit_result_halos(layers, self.fuser(layers), self.order)


class _Preferring:
    """A fuser whose results take the nearest (farthest) of the layers nearly as sharp."""

    def __init__(self, fuser: Fuser, side: str):
        self.fuser, self.side = fuser, side

    def __call__(self, layers: np.ndarray) -> FusionResult:
        from stackmff.retouch import prefer_result

        return prefer_result(layers, self.fuser(layers), self.side)


@dataclass
class FuseReport:
    """What :func:`fuse_files` did: the stacks it read, the files it wrote, where time went."""

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
               height_map: str | Path | None = None, halo: str | None = None,
               prefer: str | None = None, mesh: str | Path | None = None,
               mesh_faces: int | None = None, z_step: str | float | None = None,
               pixel_size: str | float | None = None, colour_space: str | None = None,
               metadata_from: int | str | None = None, **options) -> FuseReport:
    """Files in, files out: check everything, read, optionally align, fuse, write.

    Every check that does not need the pixels (method, options, output types and paths, the
    focus channel) runs before the first stack is read, so bad arguments cost nothing and
    write nothing. All outputs appear together, or none.

    One microscopy file (OME-TIFF, OME-Zarr, an ImageJ hyperstack) is fused stack by stack
    (every scene and time point) into a TCYX ``.ome.tif`` or ``.ome.zarr`` in its own dtype
    (see docs/microscopy.md).

    Args:
        align: ``None`` to fuse as loaded, or keyword arguments of
            :func:`stackmff.registration.align_stack` (``{}`` for its defaults).
        fuser: a prepared method to reuse across calls (see :func:`prepare_method`).
        focus_channel: microscopy: the channel (index, name, ``"mean"``) that decides.
        height_map: microscopy: a ``.tif`` for float32 heights in µm per time point.
        halo: ``"near-to-far"`` or ``"far-to-near"`` to limit halos beside near objects
            (see :mod:`stackmff.retouch.halo`), for methods that select layers.
        colour_space: RAW stacks: the space they are developed into (``srgb`` by default,
            ``linear``, ``adobe-rgb``, ``prophoto``; see docs/camera-files.md).
        metadata_from: photographs: the file (0-based) whose EXIF, XMP and IPTC the fused
            image carries (default: the reference layer, the middle one), or ``"none"``.
        prefer: ``"near"`` or ``"far"``: where several layers are nearly as sharp, take the
            nearest or the farthest (see :mod:`stackmff.retouch.ties`).
        mesh: a ``.glb``, ``.obj``, ``.ply`` or ``.stl`` for the surface (the ``mesh``
            extra; see :mod:`stackmff.surface`), of at most ``mesh_faces`` triangles.
        z_step, pixel_size: the mesh's lengths (``"0.05mm"``, or numbers in µm); for a
            microscopy file they replace its metadata's.
        **options: the method's options.
    """
    started = time.perf_counter()
    entry = check_method(method, **options)
    check_halo(halo, entry, options, prefer)
    plan = OutputPlan.of(output, focus_map, confidence, height_map, mesh,
                         MeshOptions.of(mesh_faces, z_step, pixel_size))
    source = open_inputs(inputs, focus_channel, height_map, align, colour_space,
                         metadata_from)
    try:
        plan.check(source.target(), entry.confidence, method)
        source.decide()
        if fuser is None:
            fuser = Preparing(lambda: with_halo(entry.prepare(**options), halo, prefer))
        else:
            fuser = with_halo(fuser, halo, prefer)
        seconds = {"prepare": time.perf_counter() - started}
        products = source.fuse(fuser, entry, entry.copies_pixels(**options), seconds)
        writing = time.perf_counter()
        files = plan.encode(products)
        write_files_atomically(files)
        seconds["write"] = time.perf_counter() - writing
    finally:
        if isinstance(fuser, Preparing):
            fuser.settle()  # never leave a thread importing at exit
        source.close()
    return FuseReport(method=method, written=list(files), seconds=seconds, **source.summary)


def open_inputs(inputs: str | Path | Sequence[str | Path], focus_channel=None,
                height_map=None, align: dict | None = None, colour_space: str | None = None,
                metadata_from: int | str | None = None) -> ImageFiles | MicroscopyFile:
    """The inputs as a source: one microscopy file, or the image files of one stack.

    A plain multi-page TIFF is read as a microscopy file (its pages the Z planes) when
    microscopy options are given; those options need one such file. The photographs'
    options (colour space, metadata) do not apply to microscopy files, which keep their OME
    metadata.
    """
    inputs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    single = len(inputs) == 1 and not glob_like(inputs[0])
    microscopy_file = single and is_microscopy_file(inputs[0])
    one_file = single and Path(inputs[0]).is_file()
    asked = [name for name, value in (("--focus-channel", focus_channel),
                                      ("--height-map", height_map)) if value is not None]
    if asked and not (microscopy_file or one_file):
        verb = "take" if len(asked) > 1 else "takes"
        raise StackError(f"{' and '.join(asked)} {verb} one microscopy file (OME-TIFF, "
                         "OME-Zarr, an ImageJ hyperstack or a multi-page TIFF)")
    if reads_as_microscopy(microscopy_file, one_file, bool(asked)):
        if align is not None:
            raise StackError("--align does not apply to microscopy files")
        photo = [name for name, value in (("--colour-space", colour_space),
                                          ("--metadata-from", metadata_from))
                 if value is not None]
        if photo:
            raise StackError(f"{' and '.join(photo)} apply to photographs; microscopy files "
                             "keep their OME metadata")
        from stackmff.microscopy.source import open_source

        return MicroscopyFile(open_source(inputs[0]), focus_channel)
    paths = skip_own_outputs(expand_inputs(inputs), inputs)
    if not paths:
        raise StackError(f"no images found in {', '.join(map(str, inputs))}")
    return ImageFiles(paths, align, colour_space, metadata_from)


def reads_as_microscopy(microscopy_file: bool, one_file: bool, microscopy_options: bool) -> bool:
    """The one rule for what is read as a microscopy image: a microscopy file always; one
    other file (a plain multi-page TIFF: its pages are the Z planes) when microscopy options
    are given."""
    return microscopy_file or (one_file and microscopy_options)


def glob_like(value: str | Path) -> bool:
    return not Path(value).exists() and glob.has_magic(str(value))


class ImageFiles:
    """Image files (a folder, a glob, a list, a plain multi-page TIFF, camera RAW or HEIC
    files): one stack, read at the files' bit depth (RAW: developed), optionally registered."""

    def __init__(self, paths: list[Path], align: dict | None, colour_space: str | None = None,
                 metadata_from: int | str | None = None):
        self.paths, self.align = paths, align
        self.space = None if colour_space is None else check_colour_space(colour_space)
        self.colour_space = colour_space
        self.metadata_from = metadata_from
        self.summary: dict = {}

    def target(self) -> Target:
        return Target(inputs=tuple(self.paths),
                      linear=self.space is not None and self.space.linear)

    @property
    def reference(self) -> int:
        """The reference layer: the alignment's, else the middle one."""
        chosen = (self.align or {}).get("reference", "middle")
        return len(self.paths) // 2 if chosen == "middle" else int(chosen)

    def decide(self) -> None:
        """The layer whose metadata is carried exists."""
        chosen = self.metadata_from
        if chosen is None or chosen == "none":
            return
        if isinstance(chosen, str) and not chosen.isdigit():
            raise StackError(f"--metadata-from takes a layer index or 'none', got {chosen!r}")
        if not 0 <= int(chosen) < len(self.paths):
            raise StackError(f"--metadata-from {chosen}: the stack has {len(self.paths)} "
                             f"files (0 to {len(self.paths) - 1})")

    def fuse(self, fuser: Fuser, entry: FusionMethod, copies: bool,
             seconds: dict) -> Products:
        loading = time.perf_counter()
        # as the files' integers (a quarter of float32's memory for 8 bit): every method takes
        # them; registration wants floats
        stack = load_stack(self.paths, match_sizes=self.align is not None,
                           floats=self.align is not None,
                           fusing=FusionWork(entry.float_copy),
                           colour_space=self.colour_space, reference=self.reference)
        seconds["load"] = time.perf_counter() - loading
        fuser = ready(fuser, seconds)
        if self.align is not None:
            from stackmff.registration import align_stack

            aligning = time.perf_counter()
            alignment = align_stack(stack.layers, **self.align)
            stack = dataclasses.replace(stack, layers=alignment.layers,
                                        paths=[stack.paths[k] for k in alignment.indices])
            seconds["align"] = time.perf_counter() - aligning
        fusing = time.perf_counter()
        result = fuse_photograph(fuser, stack, copies)
        seconds["fuse"] = time.perf_counter() - fusing
        height, width = stack.layers.shape[1:3]
        self.summary = {"layers": len(stack), "width": width, "height": height}
        products = stack_products(result, stack)
        products.photo = Photo(stack.icc, self._record(stack, result.method or entry.name))
        return products

    def _record(self, stack: Stack, method: str) -> FusionRecord | None:
        """Whose metadata the fused image carries, if that layer has any."""
        if self.metadata_from == "none":
            return None
        index = self.reference if self.metadata_from is None else int(self.metadata_from)
        source = self.paths[min(index, len(self.paths) - 1)]
        if not carries_metadata(source):
            return None
        return FusionRecord(source, method, len(stack), tuple(dict.fromkeys(stack.paths)),
                            SOFTWARE)

    def close(self) -> None:
        pass


def fuse_photograph(fuser: Fuser, stack: Stack, copies: bool) -> FusionResult:
    """Fuse a stack; a stack of linear light (RAW developed linear) is decided on its
    perceptual view, and its pixels are then taken from the linear layers (gathered with
    the map, or, for a method that computes pixels, its result turned linear again)."""
    if stack.space is None or not stack.space.linear:
        return fuser(stack.layers)
    result = fuser(perceptual(stack.layers))
    if copies and result.focus_map is not None:
        fused = gather(stack.layers, result.focus_map)
    else:
        fused = linear_from_perceptual(to_float(result.fused))
    return dataclasses.replace(result, fused=fused)


def stack_products(result: FusionResult, stack: Stack) -> Products:
    """The products of one fused stack of images: the fused image in the stack's bit depth."""
    return Products(
        stack.to_output(result.fused),
        None if result.focus_map is None else [result.focus_map.astype(np.uint16)],
        None if result.confidence is None else [result.confidence], len(stack), result.method,
        depths=[result.depth])


class MicroscopyFile:
    """A microscopy image (OME-TIFF, OME-Zarr, ImageJ hyperstack): one stack per scene and
    time point, fused in its own dtype into TCYX with its metadata."""

    def __init__(self, source: Source, focus_channel: int | str | None):
        self.source, self.focus_channel, self.focus = source, focus_channel, None
        try:
            check_dtype(source.dtype, str(source.path))
        except BaseException:
            source.close()
            raise
        times, channels, layers, height, width = source.shape
        self.summary = {"layers": layers, "width": width, "height": height,
                        "stacks": source.scenes * times, "channels": channels,
                        "scenes": source.scenes}

    def target(self) -> Target:
        source = self.source
        return Target(True, source.scenes * source.shape[0], source.scenes, source.shape[1],
                      source.dtype, str(source.path), (source.path,), source.metadata,
                      source.shape[2])

    def decide(self) -> None:
        """The focus channel, from the metadata."""
        source = self.source
        self.focus = resolve_channel(self.focus_channel, source.metadata, source.shape[1],
                                     str(source.path))

    def fuse(self, fuser: Fuser, entry: FusionMethod, copies: bool,
             seconds: dict) -> Products:
        fuser = ready(fuser, seconds)
        fusing = time.perf_counter()
        fused, maps, confidences, depths = fuse_stacks(self.source, fuser, copies, self.focus,
                                                       entry.name)
        seconds["fuse"] = time.perf_counter() - fusing
        source = self.source
        about = Microscopy(source.metadata, str(source.path), source.version, source.path.name)
        return Products(fused, maps, confidences, source.shape[2], entry.name, about,
                        depths=depths)

    def close(self) -> None:
        self.source.close()


def fuse_stacks(source: Source, fuser: Fuser, copies: bool, focus: int | str, method: str
                ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray] | None, list]:
    """Fuse every (scene, T) stack, one in memory at a time: the fused ``(S, T, C, Y, X)``
    in the source's dtype, and the focus map, confidence and sub-layer depth (or ``None``)
    of each stack."""
    from stackmff.channel_rule import fuse_czyx

    scenes, (times, channels, _, height, width) = source.scenes, source.shape
    fused = np.empty((scenes, times, channels, height, width), source.dtype)
    maps, confidences, depths = [], [], []
    for scene in range(scenes):
        for t in range(times):
            stack = source.read(scene, t)
            decided = fuse_czyx(stack, fuser, copies, focus, method)
            fused[scene, t], focus_map, certainty = decided.fused, decided.focus_map, \
                decided.confidence
            depths.append(decided.depth if scenes * times == 1 else None)  # a mesh's only
            del stack, decided
            release_free_memory()  # the next stack reuses pages, not the holes of this one
            maps.append(focus_map.astype(np.uint16))
            confidences.append(None if certainty is None else certainty.astype(np.float32))
    return fused, maps, None if any(c is None for c in confidences) else confidences, depths


def fuse_array(array, axes: str | None, method: str, fuser: Fuser | None,
               focus_channel: int | str | None, metadata: Metadata | None,
               options: dict, halo: str | None = None) -> MicroscopyResult:
    """Fuse every time point of an array with named axes (numpy, Dask or xarray): the same
    stack-by-stack path as a microscopy file, into memory."""
    from stackmff.microscopy.arrays import WHERE, array_source, as_dataarray, is_xarray

    entry = check_method(method, **options)
    check_halo(halo, entry, options)
    source, axes = array_source(array, axes, metadata)
    focus = resolve_channel(focus_channel, source.metadata, source.shape[1], WHERE)
    check_heights(source.metadata, source.shape[2], WHERE)
    fuser = with_halo(fuser or entry.prepare(**options), halo)
    fused, maps, confidences, depths = fuse_stacks(source, fuser,
                                                   entry.copies_pixels(**options), focus, method)
    focus_map = np.stack(maps)
    values, in_um = heights(focus_map, source.metadata, WHERE, warn=False)
    confidence = None if confidences is None else np.stack(confidences)
    fused = as_dataarray(fused[0], array, axes) if is_xarray(array) else fused[0]
    depth = None if any(d is None for d in depths) else np.stack(depths)
    return MicroscopyResult(fused, focus_map, confidence, values, source.metadata, method,
                            in_um, depth=depth)
