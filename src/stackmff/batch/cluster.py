"""The Dask executor: the same stack tasks on a Dask distributed cluster.

``--dask local`` starts a LocalCluster of worker processes; an address (``tcp://host:8786``)
uses a running scheduler, e.g. one that dask-jobqueue started on SLURM or PBS. Workers write
their outputs to the shared file system themselves; only the small report line comes back.
The method is loaded once per worker process (the cache in :mod:`stackmff.batch.work`), and a
stack whose worker died is retried once by the scheduler, then recorded as failed.
"""

from __future__ import annotations

import logging
import signal
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

from stackmff.batch.stacks import StackTask
from stackmff.batch.work import BatchOptions, BatchResult, fuse_one
from stackmff.errors import StackError

CONNECT_DEADLINE = 10.0  # seconds for the whole connection to a scheduler, handshake included
HANDSHAKE_LIMIT = 1 << 20  # a scheduler's first message is a few hundred bytes


def dask_setup(worker) -> None:
    """Preload of the LocalCluster's workers: Ctrl-C reaches the whole process group, and the
    command (not each worker) answers it, closing the cluster without the workers' tracebacks
    or their log of the tasks it cancels."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("distributed").setLevel(logging.CRITICAL)


def _setup_worker(environment: dict[str, str]) -> None:
    from stackmff.batch.work import apply_environment

    apply_environment(environment)


class _Greeting:
    """A scheduler's first message, read from a socket that counts the bytes it got."""

    def __init__(self, sock: socket.socket, end: float):
        self.sock, self.end, self.received = sock, end, 0

    def read(self, size: int) -> bytes:
        chunks = []
        while size:
            self.sock.settimeout(max(self.end - time.monotonic(), 0.001))
            chunk = self.sock.recv(min(size, 65536))
            if not chunk:
                raise EOFError
            self.received += len(chunk)
            size -= len(chunk)
            chunks.append(chunk)
        return b"".join(chunks)

    def message(self) -> dict:
        """The handshake as distributed frames it: a length, then msgpack frames."""
        from distributed.protocol import loads
        from distributed.protocol.utils import unpack_frames

        (size,) = struct.unpack("Q", self.read(8))
        if not 0 < size <= HANDSHAKE_LIMIT:
            raise ValueError(f"a first message of {size} bytes")
        frames, missing = unpack_frames(self.read(size), partial=True)
        message = None if missing else loads(frames, deserialize=False)
        if not isinstance(message, dict) or "compression" not in message:
            raise ValueError("not a handshake")
        return message


def _connection_args(address: str) -> dict:
    """How to connect, from the scheme; the ones this machine cannot use are refused in one
    line before any attempt (distributed answers them with a TypeError)."""
    import importlib.util

    from distributed.comm.addressing import parse_address
    from distributed.security import Security

    scheme = parse_address(address)[0]  # "host:8786" is tcp
    if scheme == "tcp":
        return {}
    if scheme == "tls":
        try:
            args = Security().get_connection_args("client")
        except (OSError, ValueError) as exc:
            raise StackError(f"tls:// needs a Dask security configuration: {exc}") from None
        if args["ssl_context"] is None:
            raise StackError("tls:// needs a Dask security configuration: set "
                             "distributed.comm.tls.ca-file, .client.cert and .client.key "
                             "(DASK_DISTRIBUTED__COMM__TLS__CA_FILE, ...), or use tcp://")
        return args
    if scheme == "ucx" and importlib.util.find_spec("ucp") is not None:
        return {}
    lacking = " without ucx-py installed" if scheme == "ucx" else ""
    raise StackError(f"--dask {scheme}:// is not supported{lacking}: use local, "
                     "tcp://host:port, or tls://host:port with a Dask security configuration")


def _probe(address: str, deadline: float, ssl_context) -> None:
    """Read the scheduler's greeting ourselves under one deadline: distributed waits for it
    without a limit, and takes any other server's first 8 bytes for a message length."""
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        host, port = parse_host_port(parse_address(address)[1])
    except ValueError as exc:
        raise StackError(f"{address} is not a scheduler address ({exc}): "
                         "give tcp://host:port") from None
    reach = f"cannot reach a Dask scheduler at {address}"
    end = time.monotonic() + deadline
    try:
        raw = socket.create_connection((host, port), timeout=deadline)
    except socket.gaierror:
        raise StackError(f"{reach}: unknown host {host}") from None
    except TimeoutError:
        raise StackError(f"{reach} within {deadline:g} s: no answer to connecting") from None
    except OSError as exc:
        raise StackError(f"{reach}: {exc.strerror or exc}") from None
    greeting = _Greeting(raw, end)
    try:
        if ssl_context is not None:
            raw.settimeout(max(end - time.monotonic(), 0.001))
            greeting.sock = ssl_context.wrap_socket(raw, server_hostname=host)
        greeting.message()
    except TimeoutError:
        if greeting.received:
            raise StackError(f"{address} is not a Dask scheduler: its answer stopped short"
                             ) from None
        raise StackError(f"{reach} within {deadline:g} s: it accepted the connection and "
                         "sent nothing") from None
    except EOFError:
        raise StackError(f"{address} is not a Dask scheduler: it closed the connection "
                         "without a Dask greeting") from None
    except OSError as exc:  # a reset, a TLS handshake that failed
        raise StackError(f"{reach}: {exc.strerror or exc}") from None
    except Exception as exc:  # bytes that are not a Dask message
        raise StackError(f"{address} is not a Dask scheduler "
                         f"({type(exc).__name__}: {exc})"[:300]) from None
    finally:
        greeting.sock.close()
        raw.close()


def connect(address: str, deadline: float | None = None):
    """A Client of the scheduler at ``address``, or one line saying what happened, all within
    ``deadline`` seconds (default :data:`CONNECT_DEADLINE`)."""
    from distributed import Client

    deadline = CONNECT_DEADLINE if deadline is None else deadline
    args = _connection_args(address)
    start = time.monotonic()
    if not address.startswith("ucx://"):
        _probe(address, deadline, args.get("ssl_context"))
    left = max(deadline - (time.monotonic() - start), 1.0)
    try:
        return Client(address, timeout=left)
    except (OSError, TimeoutError, ValueError) as exc:
        raise StackError(f"cannot connect to the Dask scheduler at {address}: "
                         f"{type(exc).__name__}: {exc}"[:300]) from None


def _local_cluster(stack: ExitStack, workers: int, environment: dict[str, str]):
    """A LocalCluster of ``workers`` processes whose scratch space goes with it and whose
    dashboard listens on this machine only; the workers leave Ctrl-C to the command."""
    import dask
    from distributed import Client, LocalCluster

    scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="stackmff-dask-"))
    # the workers' own log (their shutdown chatter) stays out of the user's terminal
    quiet = {**environment, "DASK_LOGGING__DISTRIBUTED": "critical"}
    logger = logging.getLogger("distributed")
    stack.callback(logger.setLevel, logger.level)
    logger.setLevel(logging.CRITICAL)
    stack.enter_context(dask.config.set({"temporary-directory": scratch,
                                         "distributed.worker.preload": [__name__]}))
    cluster = stack.enter_context(LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, local_directory=scratch,
        dashboard_address="127.0.0.1:0", env=quiet))
    return stack.enter_context(Client(cluster))


def run_dask(tasks: list[StackTask], outdir: Path, options: BatchOptions, address,
             workers: int, environment: dict[str, str], *,
             deadline: float | None = None) -> Iterator[BatchResult]:
    """Fuse ``tasks`` on a Dask cluster (``address``: ``"local"``, a scheduler address or a
    ``distributed.Client``); yields each result as it finishes. ``deadline``: seconds for
    reaching a scheduler at an address (default :data:`CONNECT_DEADLINE`)."""
    try:
        import dask
        from distributed import as_completed
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
            client = _local_cluster(stack, workers, environment)
        else:
            client = stack.enter_context(connect(address, deadline))
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
