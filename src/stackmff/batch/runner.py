"""``fuse_many``: a batch of stacks, resumable, on local workers or a Dask cluster.

A stack whose outputs all exist is skipped (writes are atomic: a present file is complete);
``force`` recomputes. Each finished stack appends one line to ``OUTDIR/batch.jsonl`` at once,
so a killed batch keeps the record of what it did.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from stackmff.batch.stacks import StackTask, find_stacks
from stackmff.batch.work import BatchOptions, BatchResult, split_formats, worker_environment
from stackmff.errors import StackError
from stackmff.io.paths import check_inside
from stackmff.outputs import check_confidence
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
              height_map: bool = False, halo: str | None = None,
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
    check_halo(halo, entry, options)
    check_confidence(confidence, entry.confidence, method)
    tasks = (list(stacks) if stacks and all(isinstance(s, StackTask) for s in stacks)
             else find_stacks(list(stacks), outdir))
    _check_outdir(outdir)
    threads = max(1, cores // workers) if client in (None, "local") else None
    batch = BatchOptions(method, tuple(sorted(options.items())),
                         None if align is None else tuple(sorted(align.items())),
                         focus_map, confidence, image_format, threads, microscopy_format,
                         focus_channel, height_map, halo)
    _check_microscopy(tasks, batch)
    _check_outputs(tasks, batch, outdir)
    results: dict[str, BatchResult] = {}
    todo = []
    for task in tasks:
        if not force and batch.finished(task, outdir):
            results[task.name] = BatchResult.of(task, outdir, batch, "skipped", attempts=0)
        else:
            todo.append(task)
    _append(outdir / REPORT, results.values())
    if todo:
        for result in _run(todo, outdir, batch, client, workers, worker_environment(threads)):
            results[result.name] = result
            _append(outdir / REPORT, [result])
    return [results[task.name] for task in tasks]


def _run(todo: list[StackTask], outdir: Path, batch: BatchOptions, client, workers: int,
         environment: dict[str, str]) -> Iterable[BatchResult]:
    """Each stack's result as it finishes, on local processes or on Dask, with progress."""
    if client is None:
        from stackmff.batch.local import run_local

        finished = run_local(todo, outdir, batch, min(workers, len(todo)), environment)
    else:
        from stackmff.batch.cluster import run_dask

        finished = run_dask(todo, outdir, batch, client, workers, environment)
    return progress(finished, desc="batch", total=len(todo), unit="stack")


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


def _append(report: Path, results: Iterable[BatchResult]) -> None:
    lines = "".join(json.dumps(dataclasses.asdict(r)) + "\n" for r in results)
    if lines:  # OUTDIR appears with its first line: a batch that cannot start leaves nothing
        report.parent.mkdir(parents=True, exist_ok=True)
        with open(report, "a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()


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
