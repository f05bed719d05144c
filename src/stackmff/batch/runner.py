"""``fuse_many``: a batch of stacks, resumable, on local workers or a Dask cluster.

A stack is skipped when its last ``ok`` line in ``OUTDIR/batch.jsonl`` was made with the same
method and options and its outputs are all there and whole; ``force`` recomputes. Each
finished stack appends one line at once, so a killed batch keeps the record of what it did.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import stat
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from stackmff.batch.stacks import StackTask, find_stacks
from stackmff.batch.work import BatchOptions, BatchResult, split_formats, worker_environment
from stackmff.errors import StackError
from stackmff.io.atomic import remove_stale_temporaries
from stackmff.io.mesh import MESH_SUFFIXES, require_trimesh
from stackmff.io.paths import check_inside
from stackmff.outputs import MeshOptions, check_confidence, is_zarr_output
from stackmff.progress import progress

REPORT = "batch.jsonl"


def _check_outdir(outdir: Path) -> None:
    """Fail before any work if OUTDIR cannot be made or written."""
    if outdir.exists() and not outdir.is_dir():
        raise StackError(f"output folder {outdir} is a file")
    existing = outdir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise StackError(f"cannot write to the output folder {outdir}: {existing} is not "
                         "writable")


def _default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


def fuse_many(stacks: Sequence[str | Path] | Sequence[StackTask], outdir: str | Path,
              method: str = "depthmap", *, client=None,
              workers: int | None = None, focus_map: bool = False, confidence: bool = False,
              align: dict | None = None, format: str | Sequence[str] = "png",
              force: bool = False, focus_channel: int | str | None = None,
              height_map: bool = False, halo: str | None = None, prefer: str | None = None,
              mesh: str | None = None, mesh_faces: int | None = None,
              z_step: str | float | None = None, pixel_size: str | float | None = None,
              colour_space: str | None = None, metadata_from: int | str | None = None,
              check_only: bool = False,
              **options) -> list[BatchResult]:
    """Fuse many stacks, each into ``OUTDIR/<its name>.<format>`` (and its maps).

    A microscopy file (OME-TIFF, OME-Zarr, ImageJ hyperstack) is fused as ``stackmff fuse``
    fuses it (every scene and time point; every channel from the focus channel's layers) into
    ``<name>.ome.tif`` or ``<name>.ome.zarr``; its maps are TIFFs with a page per stack.

    Args:
        stacks: inputs for :func:`stackmff.batch.find_stacks` (folders, globs, lists,
            multi-page TIFFs, microscopy files), or the tasks it returns.
        client: ``None`` for local worker processes, ``"local"`` for a Dask LocalCluster,
            a Dask scheduler address (``"tcp://host:8786"``), or a ``distributed.Client``.
        workers: worker processes (default: the machine's cores); the math threads of each
            are the cores divided among them.
        focus_map, confidence: also write ``<name>_focus_map.png`` (with
            ``<name>_focus_map_indices.png``) and ``<name>_confidence.png`` (``.tif`` for
            microscopy files).
        align: ``None``, or keyword arguments of :func:`stackmff.registration.align_stack`.
        format: ``png``, ``tif`` or ``jpg`` for stacks of images, ``ome.tif`` or ``ome.zarr``
            for microscopy files; a sequence gives one of each.
        force: recompute stacks whose outputs already exist.
        focus_channel: microscopy: the channel (index, name, ``"mean"``) that decides, in
            every file.
        height_map: microscopy: also write ``<name>_height_map.tif`` (float32 µm).
        halo: limit halos beside near objects (see :func:`stackmff.fuse_files`).
        colour_space, metadata_from: stacks of photographs: the space RAW stacks are
            developed into, and whose metadata each fused image carries (see
            :func:`stackmff.fuse_files`).
        prefer: ``"near"`` or ``"far"``: the nearest or farthest of the layers nearly as
            sharp (see :func:`stackmff.fuse_files`).
        mesh: ``glb``, ``obj``, ``ply`` or ``stl``: also write ``<name>.<mesh>``, the
            surface; ``mesh_faces``, ``z_step``, ``pixel_size`` as for
            :func:`stackmff.fuse_files`, the same for every stack.
        check_only: check what needs no stack (the method and its options, the formats,
            OUTDIR), look for none and fuse nothing: for a front end that finds its stacks
            later (``stackmff watch``).
        **options: the method's options (see :func:`stackmff.fuse_stack`).

    Returns:
        One :class:`BatchResult` per stack, in the order the stacks were found.

    Raises:
        StackError: before any work, for no stacks, a bad method or option, an unwritable
            OUTDIR, an output that a link leads out of it, over an input or over a folder
            that is not a previous output, an unreachable scheduler, or microscopy options
            that do not apply.
    """
    from stackmff.pipeline import check_halo, check_method

    outdir = Path(outdir)
    image_format, microscopy_format = split_formats(format)
    cores = _default_workers()
    workers = cores if workers is None else workers
    if not isinstance(workers, int) or workers < 1:
        raise StackError(f"workers must be at least 1, got {workers!r}")
    entry = check_method(method, **options)
    check_halo(halo, entry, options, prefer)
    check_confidence(confidence, entry.confidence, method)
    if colour_space is not None:
        from stackmff.io.colour import colour_space as check_colour_space

        check_colour_space(colour_space)
    meshing = _check_mesh(mesh, MeshOptions.of(mesh_faces, z_step, pixel_size))
    if check_only:
        _check_outdir(outdir)
        return []
    tasks = (list(stacks) if stacks and all(isinstance(s, StackTask) for s in stacks)
             else find_stacks(list(stacks), outdir))
    _check_outdir(outdir)
    threads = max(1, cores // workers) if client in (None, "local") else None
    batch = BatchOptions(method, tuple(sorted(options.items())),
                         None if align is None else tuple(sorted(align.items())),
                         focus_map, confidence, image_format, threads, microscopy_format,
                         focus_channel, height_map, halo, prefer, mesh, meshing,
                         colour_space, metadata_from)
    _check_microscopy(tasks, batch)
    _check_places(tasks, batch, outdir)
    _check_outputs(tasks, batch, outdir)
    report = _Report(outdir / REPORT)
    try:
        report.check()  # a report that cannot be appended fails before any stack is fused
        results = _skip_finished(tasks, batch, outdir, report, force)
        todo = [task for task in tasks if task.name not in results]
        if todo:
            _run(todo, outdir, batch, client, workers, threads, report, results)
    finally:
        report.close()
    return [results[task.name] for task in tasks]


def _skip_finished(tasks: list[StackTask], batch: BatchOptions, outdir: Path, report: _Report,
                   force: bool) -> dict[str, BatchResult]:
    """The ``skipped`` results of the stacks whose outputs a matching report line vouches
    for (recorded at once); stale temporaries of a killed writer removed first."""
    records = {} if force else _last_ok(report.path)
    _remove_temporaries(tasks, batch, outdir)
    results = {task.name: BatchResult.of(task, outdir, batch, "skipped", attempts=0)
               for task in tasks
               if not force and batch.finished(task, outdir, records.get(task.name))}
    report.append(results.values())
    return results


def _run(todo: list[StackTask], outdir: Path, batch: BatchOptions, client, workers: int,
         threads: int | None, report: _Report, results: dict[str, BatchResult]) -> None:
    """Fuse ``todo`` on local processes or on Dask, with progress, appending each stack's
    line as soon as its result comes (before more work is handed out)."""
    environment = worker_environment(threads)
    if client is None:
        from stackmff.batch.local import run_local

        finished = run_local(todo, outdir, batch, min(workers, len(todo)), environment)
    else:
        from stackmff.batch.cluster import run_dask

        finished = run_dask(todo, outdir, batch, client, workers, environment)
    try:
        for result in progress(finished, desc="batch", total=len(todo), unit="stack"):
            results[result.name] = result
            report.append([result])
    finally:
        finished.close()  # the workers stop here, on an error as on an interrupt


def _check_mesh(mesh: str | None, options: MeshOptions) -> MeshOptions:
    """A mesh format that is written, trimesh installed, and mesh options only with a
    mesh; before any work."""
    if mesh is None:
        if options.given:
            raise StackError(f"{' and '.join(options.given)} apply to --mesh, which was not "
                             "given")
        return options
    formats = tuple(suffix.lstrip(".") for suffix in MESH_SUFFIXES)
    if mesh not in formats:
        raise StackError(f"--mesh takes {', '.join(formats)} in a batch, got {mesh!r}")
    require_trimesh()
    return options


def _check_microscopy(tasks: list[StackTask], batch: BatchOptions) -> None:
    """What decides before any work whether the microscopy options fit the stacks found."""
    microscopy = [task for task in tasks if batch.microscopy(task)]
    images = [task for task in tasks if task.kind == "images"]
    if batch.microscopy_options and images:
        raise StackError(f"{' and '.join(batch.microscopy_options)} apply to microscopy files, "
                         f"and {images[0].inputs[0]} is a folder of images: batch those "
                         "separately")
    if microscopy and batch.align is not None:
        raise StackError(f"--align does not apply to microscopy files ({microscopy[0].inputs[0]})")
    if microscopy and batch.microscopy_format == "ome.zarr":
        from stackmff.microscopy.ome_zarr import zarr_module

        zarr_module()


def _check_outputs(tasks: list[StackTask], batch: BatchOptions, outdir: Path) -> None:
    """Before any work, for every stack, skipped or not: its outputs (and the report) lie
    inside OUTDIR, links followed, and pass the output plan's checks against its inputs."""
    check_inside([outdir / REPORT], outdir)
    for task in tasks:
        plan = batch.outputs(task, outdir)
        check_inside(plan.paths(), outdir)
        plan.check_paths([Path(p) for p in task.inputs], batch.microscopy(task))


def _check_places(tasks: list[StackTask], batch: BatchOptions, outdir: Path) -> None:
    """Refuse, before any work, what a write would go through or destroy: a linked folder
    below OUTDIR (the write would land outside it) and a folder where an output file goes."""
    for task in tasks:
        for path in batch.outputs(task, outdir).paths():
            folder = path.parent
            while folder != outdir and outdir in folder.parents:
                if folder.is_symlink():
                    raise StackError(f"{folder} is a symbolic link inside the output folder: "
                                     "remove it or choose another output folder")
                folder = folder.parent
            # an OME-Zarr output's folder is the output plan's to judge (_check_outputs)
            if path.is_dir() and not path.is_symlink() and not is_zarr_output(path):
                raise StackError(f"{path} is a folder where an output goes: move it away")


def _remove_temporaries(tasks: list[StackTask], batch: BatchOptions, outdir: Path) -> None:
    """Temporaries a killed writer left where this batch writes go before it starts."""
    folders = {outdir} | {path.parent for task in tasks
                          for path in batch.outputs(task, outdir).paths()}
    for folder in sorted(folders):
        remove_stale_temporaries(folder)


def _last_ok(report: Path) -> dict[str, dict]:
    """The last ``ok`` line of each stack."""
    return {str(record["name"]): record for record in report_lines(report)
            if record.get("status") == "ok" and "name" in record}


def report_lines(report: Path) -> list[dict]:
    """Every line of a report, in order; a line that does not decode (cut by a crash) is
    passed over."""
    try:
        text = report.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise StackError(f"cannot read {report}: {exc.strerror or exc}") from None
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


class _Report:
    """``batch.jsonl``, opened without following a link and appended one whole line at a
    time, each on a line of its own."""

    def __init__(self, path: Path) -> None:
        self.path, self.fd, self.cut = path, None, False

    def check(self) -> None:
        """Open an existing report now, so that one that cannot be appended fails before any
        work; a new one is made with the first line (a batch that cannot start leaves
        nothing)."""
        if os.path.lexists(self.path):
            self._open()

    def _open(self) -> None:
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, flags | getattr(os, "O_CLOEXEC", 0), 0o666)
            info = os.fstat(self.fd)
            if not stat.S_ISREG(info.st_mode):
                raise OSError(errno.EISDIR, "not a regular file")
            self.cut = info.st_size > 0 and os.pread(self.fd, 1, info.st_size - 1) != b"\n"
        except OSError as exc:
            self.close()
            reason = ("it is a symbolic link" if exc.errno == errno.ELOOP
                      else exc.strerror or str(exc))
            raise StackError(f"cannot append to the report {self.path}: {reason}") from None

    def append(self, results: Iterable[BatchResult]) -> None:
        """Append the lines; a failure stops the batch (the outputs written so far stay)."""
        data = "".join(json.dumps(dataclasses.asdict(r)) + "\n" for r in results).encode()
        if not data:
            return
        if self.fd is None:
            self._open()
        if self.cut:  # a line cut by a crash ends here, so it cannot swallow the next one
            data = b"\n" + data
        try:
            _write_all(self.fd, data)
        except OSError as exc:
            raise StackError(f"cannot append to the report {self.path}: "
                             f"{exc.strerror or exc}; the batch stops (the outputs written so "
                             "far stay)") from None
        self.cut = False

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def summary(results: list[BatchResult], stream=None) -> int:
    """Print what the batch did, naming every failed stack and every warning a stack gave;
    returns the exit status."""
    stream = stream or sys.stdout
    counts = {status: sum(r.status == status for r in results)
              for status in ("ok", "skipped", "failed")}
    print(f"batch: {counts['ok']} fused, {counts['skipped']} skipped (outputs present), "
          f"{counts['failed']} failed", file=stream)
    for result in results:
        if result.status == "failed":
            print(f"  failed: {result.name} ({', '.join(result.inputs)}): {result.error}",
                  file=stream)
        for warning in result.warnings:
            print(f"  warning: {result.name}: {warning}", file=stream)
    return 1 if counts["failed"] else 0
