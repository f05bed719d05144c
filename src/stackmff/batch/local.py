"""The local executor: worker processes on this machine, each fusing one stack at a time.

Each worker is its own process (spawned, so it starts clean of this process's threads), loads
the method once and keeps it. The parent hands out one stack at a time per worker, so when a
worker dies (killed, out of memory) it knows which stack it was fusing: that stack is retried
once in a fresh worker, then recorded as failed.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path

from stackmff.batch.stacks import StackTask
from stackmff.batch.work import BatchOptions, BatchResult, apply_environment, fuse_one

RETRIES = 1   # a stack whose worker died is tried once more
Work = Callable[[StackTask, str, BatchOptions, int], BatchResult]


def _worker(connection: Connection, environment: dict[str, str], work: Work) -> None:
    apply_environment(environment)
    from stackmff.runtime.allocator import keep_freed_memory

    keep_freed_memory()
    while True:
        job = connection.recv()
        if job is None:
            return
        task, outdir, options, attempt = job
        connection.send(work(task, outdir, options, attempt))


@dataclass
class _Worker:
    process: multiprocessing.Process
    connection: Connection
    job: tuple[StackTask, int] | None = None   # the stack it is fusing and its attempt


def run_local(tasks: list[StackTask], outdir: Path, options: BatchOptions, workers: int,
              environment: dict[str, str], work: Work = fuse_one) -> Iterator[BatchResult]:
    """Fuse ``tasks`` on ``workers`` processes; yields each result as it finishes.

    ``work`` is what a worker does with a stack (a module-level function, so that a spawned
    worker can import it)."""
    context = multiprocessing.get_context("spawn")
    todo = deque((task, 1) for task in tasks)
    pool: list[_Worker] = []

    def start() -> _Worker:
        ours, theirs = context.Pipe()
        process = context.Process(target=_worker, args=(theirs, environment, work),
                                  daemon=True)
        process.start()
        theirs.close()
        return _Worker(process, ours)

    def assign(worker: _Worker) -> None:
        task, attempt = todo.popleft()
        worker.job = (task, attempt)
        worker.connection.send((task, str(outdir), options, attempt))

    try:
        for _ in range(min(workers, len(todo))):
            pool.append(start())
        for worker in pool:
            assign(worker)
        while any(w.job for w in pool):
            busy = [w for w in pool if w.job]
            ready = wait([w.connection for w in busy] + [w.process.sentinel for w in busy])
            for worker in busy:
                if worker.connection in ready or worker.connection.poll():
                    try:
                        result = worker.connection.recv()
                    except (EOFError, OSError):
                        result = None
                    if result is not None:
                        worker.job = None
                        yield result
                        if todo:
                            assign(worker)
                        continue
                if worker.process.sentinel in ready or not worker.process.is_alive():
                    worker.process.join()
                    task, attempt = worker.job
                    worker.job = None
                    pool.remove(worker)
                    if attempt <= RETRIES:
                        todo.appendleft((task, attempt + 1))
                    else:
                        yield BatchResult.of(task, outdir, options, "failed",
                                             error=f"the worker died (exit code "
                                                   f"{worker.process.exitcode}) on every try",
                                             attempts=attempt)
                    if todo:
                        replacement = start()
                        pool.append(replacement)
                        assign(replacement)
    finally:
        for worker in pool:
            if worker.process.is_alive():
                try:
                    worker.connection.send(None)
                except OSError:
                    pass
        for worker in pool:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
