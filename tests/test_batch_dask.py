"""stackmff batch --dask under hostile addresses, servers and interrupts: one line, exit 1,
nothing written; a local cluster that leaves nothing behind and listens on this machine."""

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from stackmff.batch import cluster, find_stacks
from stackmff.batch.work import BatchOptions
from stackmff.cli import main
from stackmff.testing import make_stack, write_stack

pytest.importorskip("distributed")

DEADLINE = 1.5


def run(capsys, *args, limit: float = 20.0):
    """The command in a thread, failing the test if it has not ended within ``limit`` s."""
    done = {}
    thread = threading.Thread(target=lambda: done.update(code=main([str(a) for a in args])),
                              daemon=True)
    thread.start()
    thread.join(limit)
    assert "code" in done, f"still running after {limit} s"
    captured = capsys.readouterr()
    return done["code"], captured.out, captured.err


@pytest.fixture
def stacks(tmp_path) -> Path:
    layers, _, _ = make_stack(n_layers=3, height=40, width=48)
    write_stack(tmp_path / "in" / "s", layers)
    return tmp_path / "in"


@pytest.fixture
def short_deadline(monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_DEADLINE", DEADLINE, raising=False)


def refused(capsys, stacks, address) -> str:
    """The one error line of ``batch --dask address``; OUTDIR never appears."""
    out = stacks.parent / "out"
    code, stdout, stderr = run(capsys, "batch", stacks, "-o", out, "--dask", address)
    lines = stderr.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("stackmff: error: "), stderr
    assert not out.exists()
    return lines[0]


@pytest.fixture
def server():
    """A TCP server on 127.0.0.1 that answers each connection with ``reply`` bytes (or
    nothing) and keeps it open; yields a function that starts one and gives its address."""
    sockets = []

    def start(reply: bytes) -> str:
        listener = socket.create_server(("127.0.0.1", 0))
        sockets.append(listener)

        def serve():
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                sockets.append(conn)
                if reply:
                    conn.sendall(reply)

        threading.Thread(target=serve, daemon=True).start()
        return f"tcp://127.0.0.1:{listener.getsockname()[1]}"

    yield start
    for sock in sockets:
        sock.close()


def test_tls_without_a_security_configuration_is_refused_in_one_line(capsys, stacks):
    line = refused(capsys, stacks, "tls://127.0.0.1:8786")
    assert "tls:// needs a Dask security configuration" in line


def test_ucx_without_ucx_py_is_refused_naming_the_scheme(capsys, stacks):
    if importlib.util.find_spec("ucp") is not None:
        pytest.skip("ucx-py is installed")
    line = refused(capsys, stacks, "ucx://127.0.0.1:8786")
    assert "ucx:// is not supported without ucx-py" in line and "tcp://" in line


def test_an_unknown_scheme_is_refused_without_trying_it(capsys, stacks):
    line = refused(capsys, stacks, "foo://127.0.0.1:8786")
    assert "foo:// is not supported" in line and "within" not in line


def test_a_refused_connection_says_so_at_once(capsys, stacks):
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    start = time.monotonic()
    line = refused(capsys, stacks, f"tcp://127.0.0.1:{port}")
    assert "refused" in line and "within" not in line
    assert time.monotonic() - start < 3


def test_a_server_that_never_answers_is_given_up_within_the_deadline(capsys, stacks, server,
                                                                     short_deadline):
    address = server(b"")
    start = time.monotonic()
    line = refused(capsys, stacks, address)
    assert f"cannot reach a Dask scheduler at {address} within {DEADLINE:g} s" in line
    assert time.monotonic() - start < DEADLINE + 3


@pytest.mark.parametrize("reply", [b"HTTP/1.1 400 Bad Request\r\n\r\n",
                                   b"\x05\0\0\0\0\0\0\0hello", b"\x40\0\0\0\0\0\0\0short"])
def test_a_server_that_answers_other_bytes_is_not_a_dask_scheduler(capsys, stacks, server,
                                                                   short_deadline, reply):
    address = server(reply)
    line = refused(capsys, stacks, address)
    assert f"{address} is not a Dask scheduler" in line and "memory" not in line


def test_a_real_scheduler_passes_the_check(tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, processes=False, protocol="tcp://",
                      dashboard_address=None) as local:
        client = cluster.connect(local.scheduler_address, deadline=DEADLINE)
        assert client.scheduler_info()["address"] == local.scheduler_address
        client.close()


def listening(port: int) -> set[str]:
    import psutil

    return {c.laddr.ip for c in psutil.Process().net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def test_local_cluster_leaves_no_scratch_and_its_dashboard_listens_here(stacks, tmp_path,
                                                                       monkeypatch, capsys):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("TMPDIR", str(scratch))
    results = cluster.run_dask(find_stacks([stacks]), tmp_path / "out", BatchOptions(),
                               "local", 1, {})
    assert next(results).status == "ok"
    link = re.search(r"http://[^:]+:(\d+)/", capsys.readouterr().err)
    assert link and listening(int(link.group(1))) == {"127.0.0.1"}
    assert list(results) == []
    assert list(scratch.iterdir()) == []


def test_ctrl_c_ends_with_interrupted_and_no_dask_noise(tmp_path):
    for k in range(8):
        layers, _, _ = make_stack(n_layers=4, height=200, width=200, seed=k)
        write_stack(tmp_path / "in" / f"s{k}", layers)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "stackmff", "batch", str(tmp_path / "in"), "-o",
         str(tmp_path / "out"), "--dask", "local", "--workers", "1"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    first = process.stderr.readline()
    assert "Dask dashboard at" in first
    time.sleep(0.5)
    os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C does: the whole process group
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr.strip().splitlines() == ["stackmff: interrupted"], stderr
