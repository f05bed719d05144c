"""What a worker does with one stack: fuse it with a method loaded once per process, write
its outputs (atomically), and describe the outcome as one report line.

The same function runs in local worker processes and on Dask workers; a failing stack becomes
a ``failed`` line, never an exception, so the batch goes on.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

from stackmff.batch.stacks import StackTask
from stackmff.methods import Fuser

# what --format takes; the fused image is written in the stack's bit depth where it can
FORMATS = {"png": ".png", "tif": ".tif", "jpg": ".jpg"}


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

    def outputs(self, name: str, outdir: Path) -> dict[str, Path]:
        """The files one stack writes, by role."""
        stem = outdir / name
        paths = {"fused": stem.with_name(stem.name + FORMATS[self.format])}
        if self.focus_map:
            paths["focus_map"] = stem.with_name(stem.name + "_focus_map.png")
            paths["focus_map_indices"] = stem.with_name(stem.name + "_focus_map_indices.png")
        if self.confidence:
            paths["confidence"] = stem.with_name(stem.name + "_confidence.png")
        return paths


@dataclass
class BatchResult:
    """One line of ``batch.jsonl``."""

    name: str
    inputs: list[str]
    outputs: list[str]
    status: str                        # "ok", "skipped" or "failed"
    method: str
    error: str | None = None
    layers: int | None = None
    width: int | None = None
    height: int | None = None
    seconds: float | None = None
    peak_memory_mb: float | None = None
    attempts: int = 1
    stages: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, task: StackTask, outdir: Path, options: BatchOptions, status: str,
           **details) -> BatchResult:
        """The line for ``task``, naming its inputs and the outputs it writes under OUTDIR."""
        outputs = [str(p) for p in options.outputs(task.name, Path(outdir)).values()]
        return cls(task.name, list(task.inputs), outputs, status, options.method, **details)


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
        from stackmff.api import prepare_method

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
    from stackmff.api import fuse_files

    outdir = Path(outdir)
    paths = options.outputs(task.name, outdir)
    result = BatchResult.of(task, outdir, options, "failed", attempts=attempt)
    _set_up_process(options.threads)
    _reset_peak_memory()
    started = time.perf_counter()
    try:
        report = fuse_files(list(task.inputs), paths["fused"], options.method,
                            focus_map=paths.get("focus_map"), confidence=paths.get("confidence"),
                            align=None if options.align is None else dict(options.align),
                            fuser=_prepared(options))
    except Exception as exc:  # a stack's failure, whatever it is, must not stop the batch
        message = " ".join(str(exc).split()) or type(exc).__name__
        result.error = message if isinstance(exc, ValueError) else \
            f"{type(exc).__name__}: {message}"
    else:
        result.status = "ok"
        result.layers, result.width, result.height = report.layers, report.width, report.height
        result.stages = {k: round(v, 3) for k, v in report.seconds.items()}
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
