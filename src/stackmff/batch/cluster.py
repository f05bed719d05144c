"""The Dask executor: the same stack tasks on a Dask distributed cluster.

``--dask local`` starts a LocalCluster of worker processes; an address (``tcp://host:8786``)
uses a running scheduler, e.g. one that dask-jobqueue started on SLURM or PBS. Workers write
their outputs to the shared file system themselves; only the small report line comes back.
The method is loaded once per worker process (the cache in :mod:`stackmff.batch.work`), and a
stack whose worker died is retried once by the scheduler, then recorded as failed.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

from stackmff.batch.stacks import StackTask
from stackmff.batch.work import BatchOptions, BatchResult, fuse_one
from stackmff.errors import StackError

CONNECT_TIMEOUT = "8s"  # the whole command answers within 10 s


def _setup_worker(environment: dict[str, str]) -> None:
    from stackmff.batch.work import apply_environment

    apply_environment(environment)


def run_dask(tasks: list[StackTask], outdir: Path, options: BatchOptions, address,
             workers: int, environment: dict[str, str]) -> Iterator[BatchResult]:
    """Fuse ``tasks`` on a Dask cluster (``address``: ``"local"``, a scheduler address or a
    ``distributed.Client``); yields each result as it finishes."""
    try:
        import dask
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise StackError("--dask needs Dask: pip install 'stackmff[cluster]'") from None
    with ExitStack() as stack:
        # a stack whose worker died once is tried again; a second death fails it. The
        # workers' sampling profiler (every 10 ms) and GIL monitor (every 1 ms) cost a
        # long-running numeric task a tenth of its time: off in the clusters we start
        stack.enter_context(dask.config.set({
            "distributed.scheduler.allowed-failures": 1,
            "distributed.worker.profile.enabled": False,
            "distributed.admin.system-monitor.gil.enabled": False}))
        if not isinstance(address, str):  # a Client the caller made and keeps
            client = address
            client.run(_setup_worker, environment)
        elif address == "local":
            # the workers' own log (their shutdown chatter) stays out of the user's terminal
            quiet = {**environment, "DASK_LOGGING__DISTRIBUTED": "critical"}
            logger = logging.getLogger("distributed")
            stack.callback(logger.setLevel, logger.level)
            logger.setLevel(logging.CRITICAL)
            cluster = stack.enter_context(LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                dashboard_address=":0", env=quiet))
            client = stack.enter_context(Client(cluster))
        else:
            try:
                client = stack.enter_context(Client(address, timeout=CONNECT_TIMEOUT))
            except (OSError, TimeoutError, ValueError) as exc:
                raise StackError(f"cannot reach the Dask scheduler at {address} within "
                                 f"{CONNECT_TIMEOUT} ({type(exc).__name__})") from None
            client.run(_setup_worker, environment)
        if client.dashboard_link:
            print(f"stackmff: Dask dashboard at {client.dashboard_link}", file=sys.stderr)
        futures = {client.submit(fuse_one, task, str(outdir), options, pure=False,
                                 key=f"stackmff-fuse-{task.name}"): task for task in tasks}
        for future in as_completed(futures):
            task = futures[future]
            try:
                yield future.result()
            except Exception as exc:  # KilledWorker: the worker died on both tries
                yield BatchResult.of(task, outdir, options, "failed", attempts=2,
                                     error=f"the worker died on every try "
                                           f"({type(exc).__name__})")
