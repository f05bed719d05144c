"""The local executor: worker processes on this machine, each fusing one stack at a time.

Each worker is its own process (spawned, so it starts clean of this process's threads), loads
the method once and keeps it. The parent hands out one stack at a time per worker, so when a
worker dies (killed, out of memory) it knows which stack it was fusing: that stack is retried
once in a fresh worker (after the temporaries it left are removed), then recorded as failed.

Workers ignore SIGINT (Ctrl-C reaches the whole process group): the parent takes SIGINT and
SIGTERM, passes on the results that have come, stops the workers and then lets the signal
end the batch. A worker whose parent is gone leaves quietly when the pipe closes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path

from stackmff.batch.stacks import StackTask
from stackmff.batch.work import BatchOptions, BatchResult, apply_environment, fuse_one
from stackmff.io.atomic import remove_stale_temporaries

RETRIES = 1   # a stack whose worker died is tried once more
Work = Callable[[StackTask, str, BatchOptions, int], BatchResult]
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _worker(connection: Connection, environment: dict[str, str], work: Work) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked while starting
    apply_environment(environment)
    from stackmff.runtime.allocator import keep_freed_memory

    keep_freed_memory()
    while True:
        try:
            job = connection.recv()
            if job is None:
                return
            task, outdir, options, attempt = job
            connection.send(work(task, outdir, options, attempt))
        except (EOFError, OSError):  # the parent is gone: nobody wants the result
            return


@dataclass
class _Worker:
    process: multiprocessing.Process
    connection: Connection
    job: tuple[StackTask, int] | None = None   # the stack it is fusing and its attempt


class _Stop:
    """SIGINT and SIGTERM noted (and a wake-up written) instead of raised while the workers
    run, so that a result is never lost between a worker and the report; :meth:`deliver`
    raises the first one afterwards with the handlers from before."""

    def __init__(self) -> None:
        self.caught: list[int] = []
        self.previous: dict[int, object] = {}
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_write, False)
        if threading.current_thread() is not threading.main_thread():
            return  # handlers can be set in the main thread only
        for signum in _STOP_SIGNALS:
            if signal.getsignal(signum) not in (None, signal.SIG_IGN):
                self.previous[signum] = signal.signal(signum, self._note)

    def _note(self, signum, frame) -> None:
        self.caught.append(signum)
        with contextlib.suppress(OSError):
            os.write(self.wake_write, b"!")

    def deliver(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous.clear()
        os.close(self.wake_read)
        os.close(self.wake_write)
        for signum in self.caught[:1]:
            signal.raise_signal(signum)


def _start(context, environment: dict[str, str], work: Work) -> _Worker:
    """A fresh worker, started with SIGINT blocked so that it never sees one before it has
    set itself to ignore it."""
    ours, theirs = context.Pipe()
    process = context.Process(target=_worker, args=(theirs, environment, work), daemon=True)
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    theirs.close()
    return _Worker(process, ours)


def run_local(tasks: list[StackTask], outdir: Path, options: BatchOptions, workers: int,
              environment: dict[str, str], work: Work = fuse_one) -> Iterator[BatchResult]:
    """Fuse ``tasks`` on ``workers`` processes; yields each result as it finishes, and hands
    out more work only when asked for the next one.

    ``work`` is what a worker does with a stack (a module-level function, so that a spawned
    worker can import it)."""
    context = multiprocessing.get_context("spawn")
    todo = deque((task, 1) for task in tasks)
    pool: list[_Worker] = []
    stop = _Stop()

    def assign(worker: _Worker) -> None:
        task, attempt = todo.popleft()
        worker.job = (task, attempt)
        worker.connection.send((task, str(outdir), options, attempt))

    try:
        for _ in range(min(workers, len(todo))):
            pool.append(_start(context, environment, work))
        for worker in pool:
            assign(worker)
        while any(w.job for w in pool) and not stop.caught:
            busy = [w for w in pool if w.job]
            ready = wait([w.connection for w in busy] + [w.process.sentinel for w in busy]
                         + [stop.wake_read])
            for worker in busy:
                result = _receive(worker, ready)
                if result is not None:
                    worker.job = None
                    yield result
                    if todo and not stop.caught:
                        assign(worker)
                    continue
                if worker.process.sentinel in ready or not worker.process.is_alive():
                    yield from _replace_dead(worker, pool, todo, outdir, options)
                    if todo and not stop.caught:
                        pool.append(_start(context, environment, work))
                        assign(pool[-1])
        for worker in pool:  # on a signal: what has come is still reported
            result = _receive(worker, ()) if worker.job else None
            if result is not None:
                worker.job = None
                yield result
    finally:
        _stop_workers(pool)
        stop.deliver()


def _receive(worker: _Worker, ready) -> BatchResult | None:
    """The worker's result if it has sent one; None while it works or once it has died."""
    if worker.connection not in ready and not worker.connection.poll():
        return None
    try:
        return worker.connection.recv()
    except (EOFError, OSError):
        return None


def _replace_dead(worker: _Worker, pool: list[_Worker], todo: deque, outdir: Path,
                  options: BatchOptions) -> Iterator[BatchResult]:
    """A worker died: remove what it left half-written, queue its stack again or, after the
    last try, yield the stack's failure."""
    worker.process.join()
    task, attempt = worker.job
    worker.job = None
    pool.remove(worker)
    for folder in {path.parent for path in options.outputs(task, Path(outdir)).paths()}:
        remove_stale_temporaries(folder)
    if attempt <= RETRIES:
        todo.appendleft((task, attempt + 1))
    else:
        yield BatchResult.of(task, outdir, options, "failed",
                             error=f"the worker died (exit code {worker.process.exitcode}) "
                                   "on every try", attempts=attempt)


def _stop_workers(pool: list[_Worker]) -> None:
    """Idle workers are told to leave; busy ones (stopped early) are terminated, which their
    atomic writes survive (all of a stack's outputs or none)."""
    for worker in pool:
        if not worker.process.is_alive():
            continue
        if worker.job:
            worker.process.terminate()
            continue
        with contextlib.suppress(OSError):
            worker.connection.send(None)
    for worker in pool:
        worker.process.join(timeout=5)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.connection.close()
