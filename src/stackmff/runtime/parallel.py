"""Independent pieces of work (stack layers, pixel chunks) on worker threads, each thread
running its PyTorch ops on one core.

Why: split across cores, every small PyTorch op ends at a barrier where the cores wait for
each other. The network's many small convolutions and elementwise ops then spend much of
their time waiting, and far more when another process shares the cores (measured on 2
cores beside a busy process: the cross-layer attention of an 8 x 256 x 512 volume took
14.5 s split per op and 0.93 s as whole chunks per thread; on an idle machine the two are
about as fast). PyTorch ops release the GIL, so threads that each own whole pieces run truly
in parallel, without barriers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext

import torch

# map(function, items, context) -> results in order; context is entered in each worker
ParallelMap = Callable[..., list]


def serial_map(function: Callable, items: Iterable, context: Callable = nullcontext) -> list:
    """The same interface, one piece after the other in this thread."""
    with torch.inference_mode(), context():
        return [function(item) for item in items]


@contextmanager
def thread_map(workers: int) -> Iterator[ParallelMap]:
    """A map over ``workers`` threads with one intra-op thread each, for the block's
    duration; the process's thread setting is restored afterwards."""
    if workers <= 1:
        yield serial_map
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="stackmff") as pool:
            def run(function: Callable, items: Iterable, context: Callable = nullcontext) -> list:
                def task(item):
                    # inference mode and autocast are per thread: enter them in each worker
                    with torch.inference_mode(), context():
                        return function(item)
                return list(pool.map(task, items))

            yield run
    finally:
        torch.set_num_threads(before)
