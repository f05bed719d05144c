"""``watch_folder``: fuse each stack as its last frame lands, through the batch machinery.

A look at the folder finds new frames, frames that became complete (shown by the preview)
and stacks that ended (:mod:`stackmff.watch.grouping`); each ended stack goes to
:func:`stackmff.batch.fuse_many` as one task, so it gets the batch's outputs, its report line
in ``OUTDIR/batch.jsonl`` and its resume rule.

At the start, the report says what an earlier run finished: those stacks go to ``fuse_many``
again, which skips them when their outputs are whole and made with the same options, and
their frames are not collected again. Frames of stacks that were still open when an earlier
run stopped are collected again from the start.

Ctrl-C and SIGTERM end the watch between two writes (every write is atomic; a stack being
fused is stopped with its worker and fused again at the next start); stacks still open are
not fused. ``stop_when_idle`` ends it once no stack is open and no frame has changed for so
long: what a script that waits for a shoot wants.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from stackmff.batch.runner import REPORT, fuse_many, report_lines
from stackmff.batch.stacks import StackTask
from stackmff.errors import StackError
from stackmff.io.image import is_own_output
from stackmff.io.paths import expand_inputs
from stackmff.watch.frames import COMPLETE
from stackmff.watch.grouping import Arrivals, Ended, Rules
from stackmff.watch.preview import LivePreview, check_preview
from stackmff.watch.wakeups import Events, Polling


@dataclass
class WatchSummary:
    """What a watch did: the report lines of the stacks it fused (or skipped at its start)
    and the stacks that could not be fused (fewer than two complete frames)."""

    results: list = field(default_factory=list)
    too_small: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(result.status == status for result in self.results)


def watch_folder(folder: str | Path, outdir: str | Path, method: str = "depthmap", *,
                 rules: Rules | None = None, live: str | Path | None = None,
                 poll: float | None = None, stop_when_idle: float | None = None,
                 clock: Callable[[], float] = time.monotonic, wakeups=None,
                 echo: Callable[[str], None] | None = None, **batch) -> WatchSummary:
    """Watch ``folder`` and fuse each stack of frames into ``outdir`` as it ends.

    Args:
        folder: where the frames land: in subfolders (one stack at a time each) or in the
            folder itself.
        outdir: as for :func:`stackmff.batch.fuse_many`; inside ``folder`` it is not watched.
        method: the fusion method; ``**batch`` takes every other keyword of ``fuse_many``
            (``focus_map``, ``confidence``, ``align``, ``format``, ``halo``, the method's
            options).
        rules: when a stack ends and a frame counts (:class:`Rules`; default its defaults).
        live: a picture rewritten after every frame (:mod:`stackmff.watch.preview`).
        poll: look every ``poll`` seconds instead of waiting for file system events
            (network shares; needs no watchdog).
        stop_when_idle: return once no stack is open and nothing has happened (no frame
            changed, no stack fused) for this many seconds; ``None`` watches until
            interrupted.
        clock, wakeups: the time, and what waits for the next look (tests give their own).
        echo: where the lines about each frame and stack go (default: stdout, each line
            flushed at once, for a log or a program that follows it).

    Raises:
        StackError: before anything is written: a folder that is not there, OUTDIR that is
            the folder, rules or a preview that cannot work, anything ``fuse_many`` refuses
            before it fuses (method, options, OUTDIR), watchdog missing without ``poll``.
    """
    rules = rules or Rules()
    root, out = Path(os.path.abspath(folder)), Path(os.path.abspath(outdir))
    preview = Path(os.path.abspath(live)) if live is not None else None
    _check(root, out, rules, preview, poll, stop_when_idle)
    echo = echo or _print
    fuse_many([], out, method, check_only=True, **batch)
    if wakeups is None:
        wakeups = Polling(poll) if poll is not None else Events(root)
    skip = {os.path.realpath(out)} | ({os.path.realpath(preview)} if preview else set())
    names = _Names(report_lines(out / REPORT))
    summary = WatchSummary()
    summary.results += _resume(names, out, method, batch, echo)
    with wakeups:
        arrivals = Arrivals(root, rules, skip, names.done_frames(), clock())
        shown = LivePreview(preview, method) if preview else None
        echo(f"watching {folder} -> {outdir}: a stack ends {_ending(rules)}; Ctrl-C stops")
        try:
            quiet_since = clock()
            while True:
                now = clock()
                looked = arrivals.look(now)
                _handle(looked, shown, names, out, method, batch, summary, echo)
                if looked.ended:  # fusing took time: the quiet starts after it
                    now = quiet_since = clock()
                idle = now - max(arrivals.last_change, quiet_since)
                if stop_when_idle is not None and not arrivals.collecting \
                        and idle >= stop_when_idle:
                    return summary
                deadlines = [t - now for t in (arrivals.deadline(),) if t is not None]
                if stop_when_idle is not None and not arrivals.collecting:
                    deadlines.append(stop_when_idle - idle)
                wakeups.wait(max(0.0, min(deadlines)) if deadlines else None)
        except KeyboardInterrupt:
            if arrivals.collecting:
                print(f"stackmff: {len(arrivals.open)} open stack(s) of "
                      f"{arrivals.open_frames()} frame(s) not fused; the next start takes "
                      "them up", file=sys.stderr)
            raise


def _print(line: str) -> None:
    print(line, flush=True)


def _check(root: Path, out: Path, rules: Rules, preview: Path | None, poll: float | None,
           stop_when_idle: float | None) -> None:
    if not root.exists():
        raise StackError(f"no such folder: {root}")
    if not root.is_dir():
        raise StackError(f"{root} is not a folder: watch takes the folder the frames land in")
    if os.path.realpath(out) == os.path.realpath(root):
        raise StackError(f"the output folder {out} is the watched folder: the results would "
                         "be taken as frames; write them to another folder")
    rules.check()
    for flag, value in (("--poll", poll), ("--stop-when-idle", stop_when_idle)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise StackError(f"{flag} must be more than 0 seconds, got {value:g}")
    if preview is not None:
        check_preview(preview)
        if preview.is_relative_to(root) and preview.exists() and not is_own_output(preview):
            raise StackError(f"--live {preview} is a file in the watched folder that stackmff "
                             "did not write (a frame?): choose another name")


def _ending(rules: Rules) -> str:
    count = f"at {rules.layers} frames or " if rules.layers else ""
    return f"{count}after {rules.gap:g} s without a change"


def _resume(names: _Names, out: Path, method: str, batch: dict, echo) -> list:
    """The stacks an earlier run finished, given to ``fuse_many`` again: skipped when their
    outputs are whole and made with these options, fused again otherwise."""
    tasks = names.finished_tasks()
    if not tasks:
        return []
    results = fuse_many(tasks, out, method, workers=1, **batch)
    again = [r.name for r in results if r.status != "skipped"]
    echo(f"resumed: {len(results) - len(again)} stack(s) done before"
         + (f", {len(again)} fused again ({', '.join(again[:3])})" if again else ""))
    return results


def _handle(looked, shown: LivePreview | None, names: _Names, out: Path, method: str,
            batch: dict, summary: WatchSummary, echo) -> None:
    """Show the frames that became complete, report the notes, fuse the stacks that ended."""
    for stack, frame in looked.completed:
        if shown is not None:
            shown.add(stack.number, frame.pixels)
        frame.pixels = None
        complete = sum(f.state == COMPLETE for f in stack.frames)
        echo(f"frame {frame.path.relative_to(looked.root)} (stack {stack.number}: "
             f"{complete} complete)")
    for note in looked.notes:
        warnings.warn(note, stacklevel=2)
    for ended in looked.ended:
        _fuse(ended, shown, names, out, method, batch, summary, echo)


def _fuse(ended: Ended, shown: LivePreview | None, names: _Names, out: Path, method: str,
          batch: dict, summary: WatchSummary, echo) -> None:
    for frame, reason in ended.left_out:
        warnings.warn(f"left out {frame.path}: {reason}", stacklevel=2)
    inputs = tuple(str(frame.path) for frame in ended.frames)
    if len(inputs) < 2:
        summary.too_small.append(ended.hint)
        warnings.warn(f"stack {ended.hint} ended with {len(inputs)} complete frame(s): not "
                      "fused (a stack needs two)", stacklevel=2)
        return
    task = StackTask(names.claim(ended.hint, inputs), inputs)
    echo(f"fusing {task.name}: {len(inputs)} frames")
    result = fuse_many([task], out, method, workers=1, **batch)[0]
    summary.results.append(result)
    if result.status == "failed":
        echo(f"failed: {task.name} ({len(inputs)} frames): {result.error}")
        return
    echo(f"fused {task.name} -> {result.outputs[0]}")
    if shown is not None:
        shown.show_result(ended.stack.number, Path(result.outputs[0]))


class _Names:
    """What the report says about earlier stacks, and the names of this run's: a stack takes
    the name it is found under, or ``<name>_2``, ``<name>_3`` ... when another stack (with
    other frames) has it."""

    def __init__(self, lines: list[dict]) -> None:
        self.last: dict[str, dict] = {}
        for line in lines:
            if "name" in line and isinstance(line.get("inputs"), list):
                self.last[str(line["name"])] = line
        self.taken = {name: tuple(line["inputs"]) for name, line in self.last.items()}

    def finished_tasks(self) -> list[StackTask]:
        """The stacks of image files whose last line says they were fused (or skipped as
        fused), with every frame still there."""
        tasks = []
        for name, line in self.last.items():
            inputs = tuple(str(p) for p in line["inputs"])
            if line.get("status") in ("ok", "skipped") and line.get("kind") == "images" \
                    and inputs and all(os.path.exists(p) for p in inputs):
                tasks.append(StackTask(name, inputs))
        return tasks

    def done_frames(self) -> set[str]:
        """The real paths of those stacks' frames (a folder's images, for a stack that batch
        found)."""
        frames = set()
        for task in self.finished_tasks():
            paths = [Path(p) for p in task.inputs]
            if any(p.is_dir() for p in paths):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    paths = expand_inputs(list(task.inputs))
            frames |= {os.path.realpath(p) for p in paths}
        return frames

    def claim(self, hint: str, inputs: tuple[str, ...]) -> str:
        name, k = hint, 1
        while self.taken.get(name, inputs) != inputs:
            k += 1
            name = f"{hint}_{k}"
        self.taken[name] = inputs
        return name
