"""What a worker does with one stack: fuse it with a method loaded once per process, write
its outputs (atomically), and describe the outcome as one report line.

The same function runs in local worker processes and on Dask workers; a failing stack becomes
a ``failed`` line, never an exception, so the batch goes on. A microscopy file goes through
:func:`stackmff.fuse_files` as it does for ``stackmff fuse`` (every scene and time point, every
channel from the focus channel's layers), into ``<name>.ome.tif`` or ``<name>.ome.zarr``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stackmff.batch.stacks import StackTask
from stackmff.errors import StackError
from stackmff.methods import Fuser
from stackmff.outputs import OME_TIFF, OME_ZARR, MeshOptions, OutputPlan, is_zarr_output

# what --format takes: for stacks of images (written in the stack's bit depth where it can)
# and for microscopy files (TCYX in the file's dtype, with its metadata)
FORMATS = {"png": ".png", "tif": ".tif", "jpg": ".jpg"}
MICROSCOPY_FORMATS = {"ome.tif": OME_TIFF, "ome.zarr": OME_ZARR}


def split_formats(formats: str | Sequence[str]) -> tuple[str, str]:
    """``--format``, given at most once per kind: ``(images format, microscopy format)``,
    each defaulting to ``png`` and ``ome.tif``."""
    chosen = [formats] if isinstance(formats, str) else list(formats)
    known = {**FORMATS, **MICROSCOPY_FORMATS}
    for value in chosen:
        if value not in known:
            raise StackError(f"format must be one of {', '.join(known)}, got {value!r}")
    images = [f for f in chosen if f in FORMATS]
    microscopy = [f for f in chosen if f in MICROSCOPY_FORMATS]
    if len(images) > 1 or len(microscopy) > 1:
        raise StackError(f"give at most one format for images ({', '.join(FORMATS)}) and one "
                         f"for microscopy files ({', '.join(MICROSCOPY_FORMATS)}), got "
                         f"{', '.join(chosen)}")
    return (images or ["png"])[0], (microscopy or ["ome.tif"])[0]


@dataclass(frozen=True)
class BatchOptions:
    """Everything about a batch that is the same for every stack."""

    method: str = "depthmap"
    method_options: tuple[tuple[str, object], ...] = ()
    align: tuple[tuple[str, object], ...] | None = None
    focus_map: bool = False
    confidence: bool = False
    format: str = "png"
    threads: int | None = None          # math threads per worker; None: the library's default
    microscopy_format: str = "ome.tif"
    focus_channel: int | str | None = None
    height_map: bool = False
    halo: str | None = None
    prefer: str | None = None
    mesh: str | None = None             # a mesh format: glb, obj, ply or stl
    mesh_options: MeshOptions = MeshOptions()
    colour_space: str | None = None
    metadata_from: int | str | None = None

    @property
    def microscopy_options(self) -> list[str]:
        """The microscopy options given, as the command line names them."""
        return [flag for flag, value in (("--focus-channel", self.focus_channel is not None),
                                         ("--height-map", self.height_map)) if value]

    def microscopy(self, task: StackTask) -> bool:
        """Whether ``task`` is read as a microscopy file, by the rule of ``stackmff fuse``: a
        microscopy file always; a plain multi-page TIFF when microscopy options are given
        (its pages are then the Z planes)."""
        from stackmff.pipeline import reads_as_microscopy

        return reads_as_microscopy(task.kind == "microscopy", task.kind == "tiff",
                                   bool(self.microscopy_options))

    def outputs(self, task: StackTask, outdir: Path) -> OutputPlan:
        """The files one stack writes, named after it. A microscopy file's maps are TIFFs
        with one page per (scene, time point)."""
        microscopy = self.microscopy(task)
        suffix = (MICROSCOPY_FORMATS[self.microscopy_format] if microscopy
                  else FORMATS[self.format])
        return OutputPlan.named(outdir / task.name, suffix, focus_map=self.focus_map,
                                confidence=self.confidence,
                                height_map=self.height_map and microscopy,
                                pictures=".tif" if microscopy else ".png",
                                mesh=f".{self.mesh}" if self.mesh else None,
                                mesh_options=self.mesh_options)

    @property
    def recipe(self) -> dict:
        """What decides the pixels of an output besides its stack, as the report records it
        (JSON values, so that a line read back compares equal)."""
        recipe = {"method_options": dict(self.method_options),
                  "align": None if self.align is None else dict(self.align),
                  "halo": self.halo, "focus_channel": self.focus_channel}
        # only when given: the lines of batches run without them stay valid
        if self.prefer is not None:
            recipe["prefer"] = self.prefer
        if self.mesh is not None:
            recipe["mesh"] = dataclasses.asdict(self.mesh_options)
        for name in ("colour_space", "metadata_from"):
            if getattr(self, name) is not None:
                recipe[name] = getattr(self, name)
        return json.loads(json.dumps(recipe, default=str))

    def finished(self, task: StackTask, outdir: Path, record: dict | None) -> bool:
        """Whether ``task`` need not be fused again: its last ``ok`` report line ``record``
        was made with this method and these options and names every output, and each output
        is complete (a non-empty file with a readable header; an OME-Zarr store)."""
        if (record is None or record.get("method") != self.method
                or record.get("options") != self.recipe):
            return False
        recorded = {str(name) for name in record.get("outputs") or ()}
        paths = self.outputs(task, outdir).paths()
        return all(_recorded(path, outdir, recorded) and _complete(path) for path in paths)


@dataclass
class BatchResult:
    """One line of ``batch.jsonl``."""

    name: str
    inputs: list[str]
    outputs: list[str]
    status: str                        # "ok", "skipped" or "failed"
    method: str
    kind: str = "images"               # the task's kind (see stackmff.batch.stacks.KINDS)
    error: str | None = None
    layers: int | None = None
    width: int | None = None
    height: int | None = None
    size_t: int | None = None          # microscopy: time points, channels, Z planes, scenes
    size_c: int | None = None
    size_z: int | None = None
    scenes: int | None = None
    seconds: float | None = None
    peak_memory_mb: float | None = None
    attempts: int = 1
    stages: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    options: dict = field(default_factory=dict)   # BatchOptions.recipe: how it was made

    @classmethod
    def of(cls, task: StackTask, outdir: Path, options: BatchOptions, status: str,
           **details) -> BatchResult:
        """The line for ``task``, naming its inputs and the outputs it writes under OUTDIR."""
        outputs = [str(p) for p in options.outputs(task, Path(outdir)).paths()]
        kind = "microscopy" if options.microscopy(task) else task.kind
        return cls(task.name, list(task.inputs), outputs, status, options.method, kind,
                   options=options.recipe, **details)


def _recorded(path: Path, outdir: Path, recorded: set[str]) -> bool:
    """Whether a report line names ``path`` (OUTDIR may have been spelled otherwise then)."""
    relative = path.relative_to(outdir).as_posix()
    return str(path) in recorded or any(name == relative or name.endswith("/" + relative)
                                        for name in recorded)


def _complete(path: Path) -> bool:
    """A cheap check that an output is whole: never a link; a file that is not empty and whose
    header reads; for OME-Zarr, an image as we write it (the output plan's rule)."""
    if path.is_symlink():
        return False
    if is_zarr_output(path):
        from stackmff.microscopy.ome_zarr import written_by_stackmff

        return path.is_dir() and written_by_stackmff(path)
    if not path.is_file() or path.stat().st_size == 0:
        return False
    try:
        return _header_reads(path)
    except Exception:  # a damaged header, whatever the reader raises: not ours to trust
        return False


def _header_reads(path: Path) -> bool:
    """The output's own format at its start, and a header that reads (a TIFF's first page,
    in any layout the batch writes, TCYX too)."""
    import tifffile

    from stackmff.io.image import JPEG_MAGIC, PNG_MAGIC, probe_image
    from stackmff.io.mesh import MESH_SUFFIXES, header_reads
    from stackmff.io.tiff import TIFF_MAGIC

    if path.suffix.lower() in (*MESH_SUFFIXES, ".mtl"):
        return header_reads(path)

    magic = {".png": PNG_MAGIC, ".jpg": JPEG_MAGIC}.get(path.suffix.lower(), TIFF_MAGIC)
    with path.open("rb") as handle:
        if not handle.read(8).startswith(magic):
            return False
        if magic is not TIFF_MAGIC:
            return probe_image(path) is not None
        handle.seek(0)
        with tifffile.TiffFile(handle) as tif:
            return len(tif.pages) > 0 and tif.pages[0].shape is not None


_fusers: dict[tuple, Fuser] = {}
_process_set_up = False


def _set_up_process(threads: int | None) -> None:
    """Once per worker process: keep freed memory for reuse (a Dask worker's default is to
    trim it at once, so every large tensor would fault its pages in again; see
    :mod:`stackmff.runtime.allocator`), and split the machine's cores between the workers."""
    global _process_set_up
    if _process_set_up:
        return
    _process_set_up = True
    from stackmff.runtime.allocator import keep_freed_memory

    keep_freed_memory()
    if threads is None:
        return
    import cv2

    cv2.setNumThreads(threads)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


def _prepared(options: BatchOptions) -> Fuser:
    """The method, loaded the first time this process needs it (the network's weights once
    per worker, not once per stack)."""
    key = (options.method, options.method_options)
    if key not in _fusers:
        from stackmff.pipeline import prepare_method

        _fusers[key] = prepare_method(options.method, **dict(options.method_options))
    return _fusers[key]


def _reset_peak_memory() -> bool:
    """Linux lets a process reset its peak resident size, so each stack gets its own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _peak_memory_mb() -> float:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fuse_one(task: StackTask, outdir: str | Path, options: BatchOptions,
             attempt: int = 1) -> BatchResult:
    """Fuse one stack into its outputs under ``outdir``; any failure becomes the result."""
    from stackmff.pipeline import fuse_files

    outdir = Path(outdir)
    plan = options.outputs(task, outdir)
    result = BatchResult.of(task, outdir, options, "failed", attempts=attempt)
    microscopy = options.microscopy(task)
    extra = ({"focus_channel": options.focus_channel, "height_map": plan.height_map}
             if microscopy else {"colour_space": options.colour_space,
                                 "metadata_from": options.metadata_from})
    _set_up_process(options.threads)
    _reset_peak_memory()
    started = time.perf_counter()
    caught: list[warnings.WarningMessage] = []
    try:
        # a stack's warnings (a file without a Z step) go to its report line, each time
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            report = fuse_files(list(task.inputs), plan.image, options.method,
                                focus_map=plan.focus_map, confidence=plan.confidence,
                                align=None if options.align is None else dict(options.align),
                                fuser=_prepared(options), halo=options.halo,
                                prefer=options.prefer, mesh=plan.mesh,
                                mesh_faces=options.mesh_options.faces,
                                z_step=options.mesh_options.z_step,
                                pixel_size=options.mesh_options.pixel_size,
                                **dict(options.method_options), **extra)
    except Exception as exc:  # a stack's failure, whatever it is, must not stop the batch
        message = " ".join(str(exc).split()) or type(exc).__name__
        result.error = message if isinstance(exc, ValueError) else \
            f"{type(exc).__name__}: {message}"
    else:
        result.status = "ok"
        result.layers, result.width, result.height = report.layers, report.width, report.height
        result.stages = {k: round(v, 3) for k, v in report.seconds.items()}
        if microscopy:
            result.size_t, result.size_c = report.stacks // report.scenes, report.channels
            result.size_z, result.scenes = report.layers, report.scenes
    result.warnings = list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
    result.seconds = round(time.perf_counter() - started, 3)
    result.peak_memory_mb = round(_peak_memory_mb(), 1)
    return result


def worker_environment(threads: int | None) -> dict[str, str]:
    """Variables a worker process needs before it imports its numeric libraries."""
    if threads is None:
        return {}
    value = str(threads)
    return {name: value for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                     "OPENBLAS_NUM_THREADS")}


def apply_environment(variables: dict[str, str]) -> None:
    os.environ.update(variables)
