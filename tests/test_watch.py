"""stackmff watch: frames grouped into stacks as they land, each counted only when complete,
each stack fused through the batch machinery (the same bytes as ``stackmff fuse``), a live
preview updated from the newest frame alone, clean stops and restarts.

The grouping tests drive the watch with a clock of their own; the end-to-end tests run the
real watch (watchdog's observer, or polling) against a writer thread or process, and wait for
what the watch says rather than for fixed times: only the gap between two stacks depends on
timing, and the writer's pauses inside a stack are a small fraction of it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import watchdog  # noqa: F401  (the watch extra: installed by make test, never skipped)

from stackmff.classical.depthmap import consistent_map, fuse_depthmap
from stackmff.classical.focus_measures import default_window, laplacian_energy
from stackmff.classical.projections import fuse_variance
from stackmff.cli import main
from stackmff.errors import StackError
from stackmff.io.image import encode_image, read_image
from stackmff.io.pixels import from_float, to_float
from stackmff.stack_ops import gather, luma
from stackmff.testing import make_stack, write_stack
from stackmff.watch import Rules, watch_folder
from stackmff.watch.grouping import Arrivals
from stackmff.watch.preview import LivePreview
from stackmff.watch.run import _Names
from stackmff.watch.wakeups import Events

ROOT = Path(__file__).resolve().parents[1]


def frame_bytes(seed: int, n: int = 3, suffix: str = ".png", size=(36, 44)) -> list[bytes]:
    """Encoded frames of one small colour stack."""
    layers, _, _ = make_stack(n_layers=n, height=size[0], width=size[1], colour=True, seed=seed)
    return [encode_image(from_float(layer, np.dtype(np.uint8)), f"x{suffix}") for layer in layers]


def write_in_pieces(path: Path, data: bytes, pieces: int = 3, pause: float = 0.0) -> None:
    """Write ``data`` as a camera might: appended piece by piece, flushed each time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    step = -(-len(data) // pieces)
    with path.open("wb") as handle:
        for start in range(0, len(data), step):
            handle.write(data[start:start + step])
            handle.flush()
            time.sleep(pause)


class Clock:
    """The watch's time, moved by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def arrivals(root: Path, **rules) -> tuple[Arrivals, Clock]:
    clock = Clock()
    return Arrivals(root, Rules(**{"gap": 2.0, "settle": 0.5, **rules}), set(), set(),
                    clock()), clock


def look(watch: Arrivals, clock: Clock, at: float):
    clock.now = at
    return watch.look(at)


# --- grouping and completeness, on a clock of the test's own --------------------------------

def test_a_quiet_gap_ends_a_stack_and_frames_count_only_when_complete(tmp_path):
    watch, clock = arrivals(tmp_path)
    frames = frame_bytes(1)
    (tmp_path / "a0.png").write_bytes(frames[0])
    (tmp_path / "a1.png").write_bytes(frames[1][:100])                # half written
    found = look(watch, clock, 0.0)
    assert not found.completed and not found.ended
    found = look(watch, clock, 0.6)                                  # settled, a1 cut short
    assert [f.path.name for _, f in found.completed] == ["a0.png"]
    (tmp_path / "a1.png").write_bytes(frames[1])                     # the rest lands
    (tmp_path / "a2.png").write_bytes(frames[2])
    assert not look(watch, clock, 1.0).completed                     # a change: wait again
    found = look(watch, clock, 1.6)
    assert sorted(f.path.name for _, f in found.completed) == ["a1.png", "a2.png"]
    assert not look(watch, clock, 2.9).ended                         # 1.9 s quiet: still open
    ended = look(watch, clock, 3.0).ended                            # 2 s quiet: ended
    assert [[f.path.name for f in e.frames] for e in ended] == [["a0.png", "a1.png", "a2.png"]]
    assert ended[0].hint == "a0" and not ended[0].left_out
    (tmp_path / "b0.png").write_bytes(frames[0])                     # after the gap: new stack
    (tmp_path / "b1.png").write_bytes(frames[1])
    look(watch, clock, 10.0)
    look(watch, clock, 10.5)
    (ended,) = look(watch, clock, 12.0).ended
    assert ended.hint == "b0" and len(ended.frames) == 2


def test_a_frame_that_never_completes_is_left_out_and_named(tmp_path):
    watch, clock = arrivals(tmp_path)
    frames, jpegs = frame_bytes(2), frame_bytes(2, suffix=".jpg")
    for k in range(2):
        (tmp_path / f"f{k}.png").write_bytes(frames[k])
    (tmp_path / "f2.png").write_bytes(frames[2][:-30])               # the writer died
    (tmp_path / "f3.jpg").write_bytes(jpegs[2][:len(jpegs[2]) * 2 // 3])  # decodes, grey-filled
    look(watch, clock, 0.0)
    look(watch, clock, 1.0)
    (ended,) = look(watch, clock, 2.0).ended
    assert [f.path.name for f in ended.frames] == ["f0.png", "f1.png"]
    reasons = {frame.path.name: reason for frame, reason in ended.left_out}
    assert set(reasons) == {"f2.png", "f3.jpg"}
    assert "truncated PNG" in reasons["f2.png"] and "end marker" in reasons["f3.jpg"]
    (tmp_path / "f2.png").write_bytes(frames[2])                     # too late for its stack
    notes = look(watch, clock, 3.0).notes
    assert notes and "f2.png changed after its stack ended" in notes[0]


def test_layers_end_a_stack_at_a_count_and_subfolders_are_stacks_of_their_own(tmp_path):
    watch, clock = arrivals(tmp_path, layers=3, gap=60.0)
    frames = frame_bytes(3, n=3)
    for k in range(5):
        (tmp_path / f"r{k}.png").write_bytes(frames[k % 3])
        (tmp_path / "well" / f"z{k}.png").parent.mkdir(exist_ok=True)
        (tmp_path / "well" / f"z{k}.png").write_bytes(frames[k % 3])
    look(watch, clock, 0.0)
    ended = look(watch, clock, 1.0).ended                            # 3 of 5 in each folder
    assert sorted((e.stack.folder, e.hint, [f.path.name for f in e.frames]) for e in ended) == [
        ("", "r0", ["r0.png", "r1.png", "r2.png"]),
        ("well", "well", ["z0.png", "z1.png", "z2.png"])]
    assert {len(s.frames) for s in watch.open} == {2}                # the rest wait for more
    assert not look(watch, clock, 59.0).ended
    assert len(look(watch, clock, 60.0).ended) == 2                  # the gap ends them too


def test_frames_found_at_start_are_split_by_their_modification_times(tmp_path):
    frames = frame_bytes(4, n=3)
    shot = 1_700_000_000
    for k, when in enumerate([0, 1, 2, 100, 101]):                   # two stacks, 98 s apart
        path = tmp_path / f"IMG_{k:04d}.png"
        path.write_bytes(frames[k % 3])
        os.utime(path, (shot + when, shot + when))
    watch, clock = arrivals(tmp_path, gap=10.0)
    ended = look(watch, clock, 1.0).ended                            # the first is closed
    assert [(e.hint, len(e.frames)) for e in ended] == [("IMG_0000", 3)]
    assert [(e.hint, len(e.frames)) for e in look(watch, clock, 10.0).ended] == [("IMG_0003", 2)]


def test_the_skipped_paths_and_our_own_pictures_are_never_frames(tmp_path):
    frames = frame_bytes(5, n=2)
    for k in range(2):
        (tmp_path / f"f{k}.png").write_bytes(frames[k])
        (tmp_path / "fused" / f"f{k}.png").parent.mkdir(exist_ok=True)
        (tmp_path / "fused" / f"f{k}.png").write_bytes(frames[k])
    (tmp_path / ".hidden.png").write_bytes(frames[0])
    (tmp_path / "notes.txt").write_text("not a frame")
    LivePreview(tmp_path / "old_preview.png", "depthmap").write(read_image(
        tmp_path / "f0.png").pages[0])                               # carries our marker
    clock = Clock()
    watch = Arrivals(tmp_path, Rules(2.0, None, 0.5), {str(tmp_path / "fused")}, set(), 0.0)
    look(watch, clock, 0.0)
    notes = look(watch, clock, 1.0).notes
    assert any("old_preview.png: a file stackmff wrote" in note for note in notes)
    (ended,) = look(watch, clock, 3.0).ended
    assert [f.path.name for f in ended.frames] == ["f0.png", "f1.png"]


# --- the live preview ----------------------------------------------------------------------

@pytest.mark.parametrize("method", ["depthmap", "variance"])
def test_the_live_preview_is_the_selection_of_the_frames_so_far(tmp_path, method):
    """After each frame the preview is exactly the running selection; after the last, for
    variance the method's result, for depthmap its selection before the median smoothing."""
    layers, _, _ = make_stack(n_layers=5, height=48, width=64, colour=True, seed=6)
    stack = from_float(layers, np.dtype(np.uint8))
    preview = LivePreview(tmp_path / "preview.png", method)
    for k in range(len(stack)):
        assert preview.add(1, stack[k])
        shown = read_image(tmp_path / "preview.png").pages[0]
        assert np.array_equal(shown, preview.selection.pixels)
    if method == "variance":
        result = fuse_variance(stack)
        assert np.array_equal(shown, from_float(result.fused, np.dtype(np.uint8)))
        assert np.array_equal(preview.selection.best, result.focus_map)
        return
    window = default_window(stack.shape[1:3])
    measures = np.stack([laplacian_energy(luma(to_float(layer)), window) for layer in stack])
    raw = np.argmax(measures, axis=0)                                # computed independently
    assert np.array_equal(preview.selection.best, raw)
    assert np.array_equal(shown, gather(stack, raw))
    result = fuse_depthmap(stack)
    assert np.array_equal(consistent_map(raw, len(stack)), result.focus_map)
    same = np.all(shown == result.fused, axis=-1)
    assert np.array_equal(same | (raw != result.focus_map), np.ones_like(same))


def test_a_frame_of_another_size_is_not_shown(tmp_path):
    preview = LivePreview(tmp_path / "p.jpg", "depthmap")
    assert preview.add(1, np.zeros((8, 8, 3), np.uint8))
    assert not preview.add(1, np.zeros((9, 8, 3), np.uint8))
    assert preview.add(2, np.zeros((9, 8), np.uint16))               # a new stack starts anew


# --- the real watch ----------------------------------------------------------------------

class Said:
    """The watch's lines, and a way to wait for one (a writer paces itself by them)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.changed = threading.Condition()

    def __call__(self, line: str) -> None:
        with self.changed:
            self.lines.append(line)
            self.changed.notify_all()

    def wait_for(self, text: str, count: int = 1, timeout: float = 60.0) -> None:
        """Until ``count`` lines start with ``text``."""
        with self.changed:
            if not self.changed.wait_for(
                    lambda: sum(line.startswith(text) for line in self.lines) >= count, timeout):
                raise AssertionError(f"the watch never said {text!r}: {self.lines}")


def fuse_alone(inputs: list[str], output: Path, capsys) -> bytes:
    assert main(["fuse", *inputs, "-o", str(output), "--focus-map",
                 str(output.with_name(output.stem + "_focus_map.png")), "-q"]) == 0
    capsys.readouterr()
    return output.read_bytes()


def test_watch_fuses_stacks_as_they_land_with_watchdog(tmp_path, capsys):
    """A writer thread drops frames slowly, some in pieces, in two rounds: stacks by the gap
    (frames in the folder) and by subfolder; one frame never completes. The real watchdog
    observer wakes the watch. OUTDIR and the preview lie inside the watched folder."""
    shots = tmp_path / "shots"
    shots.mkdir()
    out, preview = shots / "fused", shots / "preview.png"
    said = Said()
    rounds = [(frame_bytes(10), frame_bytes(11)), (frame_bytes(12), frame_bytes(13))]

    def writer() -> None:
        for n, (loose, folder) in enumerate(rounds):
            for k in range(3):
                write_in_pieces(shots / f"r{n}_{k}.png", loose[k], pieces=3, pause=0.02)
                write_in_pieces(shots / f"well{n}" / f"z{k}.png", folder[k], pieces=2)
                time.sleep(0.05)
            if n == 0:                                               # cut short, for ever
                (shots / "r0_9.png").write_bytes(loose[0][:200])
            said.wait_for("fused ", count=2 * (n + 1))

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    with pytest.warns(UserWarning, match="left out .*r0_9.png: it does not decode"):
        summary = watch_folder(shots, out, "depthmap", rules=Rules(gap=0.8, settle=0.2),
                               live=preview, stop_when_idle=1.0, echo=said, focus_map=True)
    thread.join(5)
    assert sorted(r.name for r in summary.results) == ["r0_0", "r1_0", "well0", "well1"]
    assert {r.status for r in summary.results} == {"ok"}
    for result in summary.results:
        assert [Path(p).name for p in result.inputs] == (
            [f"r{result.name[1]}_{k}.png" for k in range(3)] if result.name[0] == "r"
            else ["z0.png", "z1.png", "z2.png"])
        reference = tmp_path / "alone" / f"{result.name}.png"
        reference.parent.mkdir(exist_ok=True)
        assert (out / f"{result.name}.png").read_bytes() == fuse_alone(result.inputs, reference,
                                                                        capsys)
        assert (out / f"{result.name}_focus_map_indices.png").read_bytes() == \
            reference.with_name(f"{result.name}_focus_map_indices.png").read_bytes()
    shown = read_image(preview).pages[0]                             # a stack of round 2
    assert any(np.array_equal(shown, read_image(out / f"{name}.png").pages[0])
               for name in ("r1_0", "well1"))
    lines = [json.loads(line) for line in (out / "batch.jsonl").read_text().splitlines()]
    assert [line["status"] for line in lines] == ["ok"] * 4
    assert not list(tmp_path.rglob(".stackmff-*"))

    before = {p: p.stat().st_mtime_ns for p in out.iterdir()}        # a restart redoes nothing
    again = watch_folder(shots, out, "depthmap", rules=Rules(gap=0.4, settle=0.1),
                         live=preview, poll=0.05, stop_when_idle=0.4, echo=said, focus_map=True)
    assert sorted(r.status for r in again.results) == ["skipped"] * 4
    assert {p: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "batch.jsonl"} == {
        p: t for p, t in before.items() if p.name != "batch.jsonl"}


def test_a_stack_named_like_an_earlier_one_gets_the_next_free_name():
    names = _Names([{"name": "A", "inputs": ["/s/A/1.png", "/s/A/2.png"], "status": "ok"},
                    {"name": "B", "inputs": ["/s/B/1.png", "/s/B/2.png"], "status": "failed"}])
    assert names.claim("A", ("/s/A/3.png", "/s/A/4.png")) == "A_2"   # A has other frames
    assert names.claim("A", ("/s/A/5.png", "/s/A/6.png")) == "A_3"
    assert names.claim("A", ("/s/A/1.png", "/s/A/2.png")) == "A"     # the same stack again
    assert names.claim("B", ("/s/B/1.png", "/s/B/2.png")) == "B"     # a failed one, retried
    assert names.claim("C", ("/s/C/1.png", "/s/C/2.png")) == "C"


# --- stops, restarts, bad input ------------------------------------------------------------

def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "stackmff", "watch", *args]


def environment() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def read_until(process: subprocess.Popen, text: str, timeout: float = 60.0) -> list[str]:
    """The lines the watch printed up to the first holding ``text``."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    process.kill()
    raise AssertionError(f"no line with {text!r}: {lines}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_leaves_nothing_half_written_and_a_restart_finishes(tmp_path, signum, capsys):
    """The signal comes while a stack is being fused (the worker is stopped; its outputs
    appear whole or not at all) with another stack still open; a restart fuses both."""
    shots, out, preview = tmp_path / "shots", tmp_path / "out", tmp_path / "preview.jpg"
    layers, _, _ = make_stack(4, 200, 240, colour=True, seed=8)
    first = write_stack(shots / "A", layers)
    args = command(str(shots), "-o", str(out), "--gap", "0.6", "--settle", "0.1",
                   "--poll", "0.05", "--live", str(preview), "--focus-map")
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=environment())
    read_until(process, "frame A/layer_3.png")
    write_stack(shots / "B", layers[:2])                             # B opens while A ends
    read_until(process, "fusing A")
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == (130 if signum == signal.SIGINT else 143), stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert not list(tmp_path.rglob(".stackmff-*"))
    fused = sorted(p.name for p in out.glob("*.png")) if out.exists() else []
    assert fused in ([], ["A.png", "A_focus_map.png", "A_focus_map_indices.png"])
    assert read_image(preview).pages[0].shape == (200, 240, 3)       # whole, if there
    if signum == signal.SIGTERM:
        return
    again = subprocess.run(args + ["--stop-when-idle", "0.6"], capture_output=True, text=True,
                           env=environment(), timeout=120)
    assert again.returncode == 0, again.stderr
    names = sorted(json.loads(line)["name"] for line in
                   (out / "batch.jsonl").read_text().splitlines()
                   if json.loads(line)["status"] == "ok")
    assert names == ["A", "B"]
    assert (out / "A.png").read_bytes() == fuse_alone([str(p) for p in first],
                                                      tmp_path / "alone.png", capsys)


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main(["watch", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("case, expect", [
    ("missing folder", "no such folder"),
    ("a file as the folder", "is not a folder"),
    ("OUTDIR is the folder", "is the watched folder"),
    ("--gap 0", "--gap must be more than 0"),
    ("--gap -1", "--gap must be more than 0"),
    ("--layers 1", "--layers must be at least 2"),
    ("--settle 20 (not below the gap)", "--settle must be"),
    ("--live preview.xyz", "--live takes a picture"),
    ("--live on a frame", "did not write"),
    ("--stop-when-idle 0", "--stop-when-idle must be"),
    ("--poll nan", "--poll must be"),
    ("-m nothing", "unknown fusion method"),
    ("--confidence with pyramid", "no confidence map"),
])
def test_bad_input_is_one_line_exit_1_and_nothing_written(tmp_path, capsys, case, expect):
    shots = tmp_path / "shots"
    write_stack(shots, make_stack(2, 16, 16)[0])
    out = tmp_path / "out"
    args = {"missing folder": [tmp_path / "nowhere", "-o", out],
            "a file as the folder": [shots / "layer_0.png", "-o", out],
            "OUTDIR is the folder": [shots, "-o", shots],
            "--live on a frame": [shots, "-o", out, "--live", shots / "layer_1.png"],
            "-m nothing": [shots, "-o", out, "-m", "nothing"],
            "--confidence with pyramid": [shots, "-o", out, "-m", "pyramid", "--confidence"],
            }.get(case, [shots, "-o", out, *case.split(" (")[0].split()])
    before = sorted(tmp_path.rglob("*"))
    code, stdout, stderr = run_cli(capsys, "--poll", "0.1", *args)
    assert code == 1 and not stdout
    assert len(stderr.strip().splitlines()) == 1 and expect in stderr, stderr
    assert sorted(tmp_path.rglob("*")) == before


def test_without_watchdog_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "watchdog.observers", None)
    with pytest.raises(StackError, match=r"pip install 'stackmff\[watch\]', or give --poll"):
        Events(Path("."))


def test_polling_needs_no_watchdog_and_a_plain_fuse_never_imports_it(tmp_path):
    shots = tmp_path / "shots"
    write_stack(shots / "A", make_stack(2, 16, 16)[0])
    program = ("import sys\nfrom stackmff.cli import main\n"
               f"assert main(['fuse', {str(shots / 'A')!r}, '-o', {str(tmp_path / 'f.png')!r},"
               " '-q']) == 0\nassert 'watchdog' not in sys.modules\n"
               f"assert main(['watch', {str(shots)!r}, '-o', {str(tmp_path / 'out')!r}, "
               "'--poll', '0.05', '--gap', '0.3', '--settle', '0.1', "
               "'--stop-when-idle', '0.3']) == 0\n"
               "assert 'watchdog' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          env=environment(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "A.png").is_file()


def test_the_watch_sleeps_between_looks_while_a_stack_stays_open(tmp_path):
    """With --stop-when-idle shorter than the gap, the watch waits for the gap (a few looks),
    it does not spin."""
    write_stack(tmp_path / "shots" / "A", make_stack(2, 16, 16)[0])
    clock, waits = Clock(), []

    class Wakeups:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def wait(self, timeout):
            waits.append(timeout)
            clock.now += timeout

    summary = watch_folder(tmp_path / "shots", tmp_path / "out", rules=Rules(4.0, None, 0.5),
                           stop_when_idle=0.25, clock=clock, wakeups=Wakeups(),
                           echo=lambda line: None)             # times exact in binary
    assert [r.name for r in summary.results] == ["A"]
    assert waits == [0.5, 3.5, 0.25]           # settled, the gap ended it, then idle
