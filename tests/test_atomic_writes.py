"""Atomic writes: all outputs or none, no leftovers, and interrupts that behave.

The interrupt tests run a child Python that signals itself at a fixed point (from inside a
patched call), so nothing depends on timing.
"""

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stackmff.errors import StackError
from stackmff.io.atomic import write_files_atomically

_CHILD_PRELUDE = """
import os, signal, sys
from pathlib import Path
from stackmff.io.atomic import write_files_atomically

folder = Path(sys.argv[1])
signum = getattr(signal, sys.argv[2])
real_replace = os.replace
calls = []

def replace_then_signal(src, dst, *args, **kwargs):
    real_replace(src, dst, *args, **kwargs)
    calls.append(dst)
    if len(calls) == 1:  # the first output is in place, the second is not yet
        os.kill(os.getpid(), signum)

class SignalBetweenFiles(dict):
    def items(self):
        for index, item in enumerate(super().items()):
            if index == 1:  # the first temporary is written, the second not yet
                os.kill(os.getpid(), signum)
            yield item

def files(kind=dict):
    return kind({folder / "new" / "deeper" / "fused.png": b"image",
                 folder / "new" / "deeper" / "map.png": b"map"})
"""


def _run_child(tmp_path: Path, body: str, signum: str) -> subprocess.CompletedProcess:
    script = _CHILD_PRELUDE + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script, str(tmp_path), signum],
                          capture_output=True, text=True, timeout=60)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


def _outputs(folder: Path) -> list[str]:
    deeper = folder / "new" / "deeper"
    return sorted(p.name for p in deeper.iterdir()) if deeper.exists() else []


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_signal_between_renames_still_gives_all_outputs(tmp_path, signum):
    process = _run_child(tmp_path, """
        os.replace = replace_then_signal
        write_files_atomically(files())
        print("not reached")
    """, signum)
    expected = -getattr(signal, signum)  # the default handlers end the process by the signal
    assert process.returncode == expected, process.stderr
    assert "not reached" not in process.stdout
    assert _outputs(tmp_path) == ["fused.png", "map.png"]
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_signal_while_writing_leaves_nothing(tmp_path, signum):
    process = _run_child(tmp_path, """
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            write_files_atomically(files(SignalBetweenFiles))
        except KeyboardInterrupt:
            print("interrupted")
    """, signum)
    assert process.returncode == 0, process.stderr
    assert process.stdout.strip() == "interrupted"
    assert list(tmp_path.iterdir()) == []  # no temporaries and no folders made by the call


@pytest.mark.parametrize("signum, status", [("SIGTERM", 143), ("SIGINT", 130)])
def test_cli_turns_a_signal_into_one_line_and_its_exit_status(tmp_path, signum, status):
    process = _run_child(tmp_path, """
        import stackmff.cli as cli

        def run_methods():
            os.replace = replace_then_signal
            write_files_atomically(files())
            print("not reached")

        cli._run_methods = run_methods
        sys.exit(cli.main(["methods"]))
    """, signum)
    assert process.returncode == status, process.stderr
    assert process.stderr == "stackmff: interrupted\n"
    assert process.stdout == ""
    assert _outputs(tmp_path) == ["fused.png", "map.png"]
    assert _leftovers(tmp_path) == []


def test_main_leaves_the_sigterm_handler_as_it_found_it():
    from stackmff.cli import main

    before = signal.getsignal(signal.SIGTERM)
    assert main(["methods"]) == 0
    assert signal.getsignal(signal.SIGTERM) is before


def _fail_on_replace_number(monkeypatch, number: int) -> None:
    real_replace = os.replace
    calls = []

    def replace(src, dst, *args, **kwargs):
        calls.append(dst)
        if len(calls) == number:
            raise OSError(28, "No space left on device", str(src))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("first_existed", [True, False])
def test_failed_rename_puts_back_what_was_there(tmp_path, monkeypatch, first_existed):
    first, second = tmp_path / "fused.png", tmp_path / "map.png"
    if first_existed:
        first.write_bytes(b"old image")
    second.write_bytes(b"old map")
    _fail_on_replace_number(monkeypatch, 2)
    with pytest.raises(StackError, match="No space left"):
        write_files_atomically({first: b"new image", second: b"new map"})
    if first_existed:
        assert first.read_bytes() == b"old image"
    else:
        assert not first.exists()
    assert second.read_bytes() == b"old map"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["map.png"] + (["fused.png"] if first_existed else []))


def test_successful_write_replaces_and_leaves_no_backups(tmp_path):
    first, second = tmp_path / "fused.png", tmp_path / "map.png"
    first.write_bytes(b"old image")
    write_files_atomically({first: b"new image", second: b"new map"})
    assert first.read_bytes() == b"new image"
    assert second.read_bytes() == b"new map"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fused.png", "map.png"]


def test_failed_write_removes_the_folders_it_made(tmp_path):
    (tmp_path / "existing").mkdir()
    (tmp_path / "blocker").write_text("a file, not a folder")
    files = {tmp_path / "existing" / "new" / "deeper" / "fused.png": b"image",
             tmp_path / "blocker" / "map.png": b"map"}
    with pytest.raises(StackError, match="cannot write"):
        write_files_atomically(files)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["blocker", "existing"]


@pytest.mark.parametrize("length", [242, 250, 255])
def test_longest_legal_names_can_be_written(tmp_path, length):
    target = tmp_path / ("a" * (length - 4) + ".png")
    write_files_atomically({target: b"image"})
    assert target.read_bytes() == b"image"
    assert list(tmp_path.iterdir()) == [target]


def test_temporaries_are_synced_before_renaming_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync")
        return real_fsync(fd)

    def replace(src, dst, *args, **kwargs):
        events.append("replace")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_files_atomically({tmp_path / "a.png": b"a", tmp_path / "b.png": b"b"})
    first_rename = events.index("replace")
    assert events[:first_rename] == ["fsync", "fsync"]
    assert events.count("replace") == 2
    assert events[-1] == "fsync"  # the folder, after the renames


def test_error_names_the_output_not_the_temporary(tmp_path):
    target = tmp_path / "fused.png"
    target.mkdir()  # a folder in the way: the rename onto it fails
    (target / "keep.txt").write_text("mine")
    with pytest.raises(StackError) as error:
        write_files_atomically({target: b"image"})
    message = str(error.value)
    assert message.startswith(f"cannot write {target}: ")
    assert ".tmp" not in message
    assert (target / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fused.png"]


def test_error_while_writing_names_the_output(tmp_path, monkeypatch):
    target = tmp_path / "fused.png"
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            raise OSError(28, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.handle, name)

    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: FullDisk(real_fdopen(fd, *a, **k)))
    with pytest.raises(StackError, match=re.escape(f"cannot write {target}: No space left on device")):
        write_files_atomically({target: b"image"})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("point, expected", [
    ("replace", ["conf.png", "fused.png", "map.png", "map_indices.png"]),  # between renames
    ("fsync", None),  # while the temporaries are written
])
def test_sigterm_during_fuse_gives_all_outputs_or_none(tmp_path, point, expected):
    from stackmff.testing import make_stack, write_stack

    layers, _, _ = make_stack(n_layers=3, height=40, width=48)
    write_stack(tmp_path / "stack", layers)
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import os, signal, sys
        import stackmff.cli as cli

        real = os.{point}

        def signalling(*args, **kwargs):
            result = real(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGTERM)
            return result

        os.{point} = signalling
        sys.exit(cli.main(sys.argv[1:]))
    """)
    process = subprocess.run(
        [sys.executable, "-c", script, "fuse", str(tmp_path / "stack"), "-o",
         str(out / "fused.png"), "--method", "depthmap", "--focus-map", str(out / "map.png"),
         "--confidence", str(out / "conf.png")], capture_output=True, text=True, timeout=60)
    assert process.returncode == 143, process.stderr
    assert process.stderr == "stackmff: interrupted\n"
    if expected is None:
        assert not out.exists()
    else:
        assert sorted(p.name for p in out.iterdir()) == expected
