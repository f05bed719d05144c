"""stackmff batch under hostile conditions: a report that cannot be appended, signals,
outputs that are not what they seem, temporaries of killed writers, links inside OUTDIR."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import stackmff
import stackmff.batch.runner as runner
from stackmff.batch import find_stacks
from stackmff.batch.local import run_local
from stackmff.batch.work import BatchOptions
from stackmff.cli import main
from stackmff.testing import make_stack, write_stack

TESTS = Path(__file__).resolve().parent
SRC = Path(stackmff.__file__).resolve().parents[1]  # the sources under test


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def lines_of(outdir: Path) -> list[dict]:
    return [json.loads(line) for line in (outdir / "batch.jsonl").read_text().splitlines()]


def images(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


def one_error(stderr: str, *words: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stackmff: error:"), stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def plate(tmp_path) -> Path:
    """Six tiny stacks."""
    root = tmp_path / "plate"
    for k in range(6):
        layers, _, _ = make_stack(n_layers=2, height=24, width=32, colour=k % 2 == 1, seed=k)
        write_stack(root / f"s{k}", layers)
    return root


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, bytes]:
    """An uninterrupted batch of the six stacks, with focus maps."""
    base = tmp_path_factory.mktemp("reference")
    for k in range(6):
        layers, _, _ = make_stack(n_layers=2, height=24, width=32, colour=k % 2 == 1, seed=k)
        write_stack(base / "plate" / f"s{k}", layers)
    assert main([
        "batch", str(base / "plate"), "-o", str(base / "out"), "--focus-map"]) == 0
    return images(base / "out")


# M3: a report that cannot be appended

def test_a_report_that_cannot_be_appended_fails_before_any_stack(plate, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "batch.jsonl").mkdir(parents=True)
    code, _, stderr = run(capsys, "batch", plate, "-o", out, "--workers", "1")
    assert code == 1
    one_error(stderr, "batch.jsonl")
    assert images(out) == {}


def test_an_append_that_fails_during_the_run_stops_the_batch_in_one_line(plate, tmp_path,
                                                                          capsys, monkeypatch):
    written = []

    def full_disk(fd, data):
        if written:
            raise OSError(28, "No space left on device")
        written.append(data)
        os.write(fd, data)

    monkeypatch.setattr(runner, "_write_all", full_disk, raising=False)
    out = tmp_path / "out"
    code, _, stderr = run(capsys, "batch", plate, "-o", out, "--workers", "1")
    assert code == 1
    one_error(stderr, "batch.jsonl", "No space left on device")
    assert len(lines_of(out)) == 1 and len(images(out)) >= 1  # what was written stays


# M4, L5 and the whole promise: interrupted, resumed, the same bytes

CHILD = """
import sys
import batch_work
from stackmff.batch import local
from stackmff.cli import main
local.run_local.__defaults__ = (batch_work.slow,)
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                          (signal.SIGKILL, -9)])
def test_an_interrupted_batch_resumes_to_the_same_bytes(plate, tmp_path, capsys, reference,
                                                        signum, code):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{TESTS}", PYTHONWARNINGS="ignore")
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, "batch", str(plate), "-o", str(out), "--workers", "2",
         "--focus-map"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    deadline = time.monotonic() + 60
    while not ((out / "batch.jsonl").exists() and (out / "batch.jsonl").read_text()):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    if signum == signal.SIGINT:
        os.killpg(process.pid, signum)  # Ctrl-C reaches every process of the group
    else:
        process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)  # also waits for orphaned workers
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    if signum != signal.SIGKILL:
        assert stderr.strip().splitlines()[-1] == "stackmff: interrupted"
    assert run(capsys, "batch", plate, "-o", out, "--focus-map")[0] == 0
    assert images(out) == reference
    ok = {line["name"] for line in lines_of(out) if line["status"] == "ok"}
    assert ok == {f"s{k}" for k in range(6)}
    assert temporaries(out) == []


def test_outputs_without_a_report_line_are_fused_again(plate, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(capsys, "batch", plate, "-o", out, "--workers", "1")[0] == 0
    (out / "batch.jsonl").unlink()
    code, stdout, _ = run(capsys, "batch", plate, "-o", out, "--workers", "1")
    assert code == 0 and "6 fused, 0 skipped" in stdout
    assert {line["status"] for line in lines_of(out)} == {"ok"}


# M9: what a resume trusts

@pytest.mark.parametrize("damage", ["empty", "undecodable"])
def test_a_damaged_output_is_fused_again(plate, tmp_path, capsys, damage):
    out = tmp_path / "out"
    assert run(capsys, "batch", plate, "-o", out, "--workers", "1")[0] == 0
    good = (out / "s2.png").read_bytes()
    (out / "s2.png").write_bytes(b"" if damage == "empty" else b"not a png at all")
    code, stdout, _ = run(capsys, "batch", plate, "-o", out, "--workers", "1")
    assert code == 0 and "1 fused, 5 skipped" in stdout
    assert (out / "s2.png").read_bytes() == good


def test_outputs_of_another_method_are_fused_again(plate, tmp_path, capsys):
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    assert run(capsys, "batch", plate, "-o", out, "--workers", "1", "-m", "pyramid")[0] == 0
    code, stdout, _ = run(capsys, "batch", plate, "-o", out, "--workers", "1")
    assert code == 0 and "6 fused, 0 skipped" in stdout
    assert run(capsys, "batch", plate, "-o", fresh, "--workers", "1")[0] == 0
    assert images(out) == images(fresh)
    last = lines_of(out)[-6:]
    assert {(line["status"], line["method"]) for line in last} == {("ok", "depthmap")}
    assert all("method_options" in line["options"] for line in last)
    code, stdout, _ = run(capsys, "batch", plate, "-o", out, "--workers", "1")
    assert "0 fused, 6 skipped" in stdout


def test_a_foreign_folder_at_an_output_is_refused_and_kept(tmp_path, capsys):
    pytest.importorskip("zarr")
    from microscopy_files import hyperstack, write_ome_tiff

    (tmp_path / "plate").mkdir()
    write_ome_tiff(tmp_path / "plate" / "A1.ome.tif", hyperstack()[0][:1])
    precious = tmp_path / "out" / "A1.ome.zarr" / "precious.txt"
    precious.parent.mkdir(parents=True)
    precious.write_text("mine")
    for force in ([], ["--force"]):
        code, _, stderr = run(capsys, "batch", tmp_path / "plate", "-o", tmp_path / "out",
                              "--format", "ome.zarr", "--workers", "1", *force)
        assert code == 1
        one_error(stderr, str(precious.parent))
        assert precious.read_text() == "mine"
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["A1.ome.zarr"]


def test_a_report_cut_mid_line_swallows_no_record(plate, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(capsys, "batch", plate, "-o", out, "--workers", "1")[0] == 0
    text = (out / "batch.jsonl").read_text()
    (out / "batch.jsonl").write_text(text[:len(text) // 2 + 7])  # a crash in mid-line
    (out / "s5.png").unlink()
    code, stdout, _ = run(capsys, "batch", plate, "-o", out, "--workers", "1")
    assert code == 0 and "skipped" in stdout
    lines = (out / "batch.jsonl").read_text().splitlines()
    cut = text[:len(text) // 2 + 7].splitlines()[-1]
    assert cut in lines  # the cut line stays as it was, alone
    decoded = [json.loads(line) for line in lines if line != cut]
    assert {line["name"] for line in decoded if line["status"] == "ok"} == {
        f"s{k}" for k in range(6)}


# M10: temporaries of a killed writer

def test_a_worker_killed_while_writing_leaves_no_temporary(tmp_path):
    from batch_work import die_while_writing

    for name in ("a", "b"):
        layers, _, _ = make_stack(n_layers=2, height=24, width=24, seed=len(name))
        write_stack(tmp_path / "in" / name, layers)
    tasks = find_stacks([tmp_path / "in"])
    results = list(run_local(tasks, tmp_path / "out", BatchOptions(), 1, {},
                             work=die_while_writing))
    assert [r.status for r in results] == ["ok", "ok"] and results[0].attempts == 2
    assert temporaries(tmp_path / "out") == []


def test_a_resume_removes_only_stale_temporaries(plate, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(capsys, "batch", plate, "-o", out, "--workers", "1", "--focus-map")[0] == 0
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    from stackmff.io import atomic

    tag = atomic._prefix() if hasattr(atomic, "_prefix") else f".stackmff-{os.getpid()}-"
    stale = out / f"{tag.replace(str(os.getpid()), dead)}abcd1234.tmp"
    living = out / f"{tag}efgh5678.tmp"
    old = out / ".stackmff-0a1b2c3d.tmp"  # an older name: stale after a day without change
    foreign = out / "notes.tmp"
    for path in (stale, living, old, foreign):
        path.write_bytes(b"half")
    os.utime(old, (time.time() - 3 * 86400,) * 2)
    (out / "s1.png").unlink()
    assert run(capsys, "batch", plate, "-o", out, "--workers", "1", "--focus-map")[0] == 0
    assert temporaries(out) == sorted([living.name, foreign.name])


# L1: links inside OUTDIR

def test_a_linked_report_is_refused_and_its_target_untouched(plate, tmp_path, capsys):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere.txt"
    out.mkdir()
    elsewhere.write_text("keep\n")
    (out / "batch.jsonl").symlink_to(elsewhere)
    code, _, stderr = run(capsys, "batch", plate, "-o", out, "--workers", "1")
    assert code == 1
    one_error(stderr, "batch.jsonl", "symbolic link", "outside the output folder")
    assert elsewhere.read_text() == "keep\n" and images(out) == {}


def test_a_linked_folder_inside_outdir_is_refused(tmp_path, capsys):
    layers, _, _ = make_stack(n_layers=2, height=24, width=24)
    write_stack(tmp_path / "plate" / "row" / "well", layers)
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "row").symlink_to(elsewhere, target_is_directory=True)
    code, _, stderr = run(capsys, "batch", tmp_path / "plate", "-o", out, "--workers", "1")
    assert code == 1
    one_error(stderr, str(out / "row"), "symbolic link")
    assert list(elsewhere.iterdir()) == [] and not (out / "batch.jsonl").exists()

