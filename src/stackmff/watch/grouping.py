"""Frames into stacks, as they arrive: one folder's frames at a time, ended by a quiet gap or
a frame count.

Each folder (the watched one, or any folder below it) holds one stack at a time; a frame
joins the open stack of its folder. A stack takes no more frames once it holds ``layers``
frames (then the next frame opens a new stack), and it ends when it holds that many complete
frames, or when none of its files has changed for ``gap`` seconds. At its end, frames that
are not complete are left out and named. Frames found when the watch starts are taken in the
order of their modification times, split where two are more than ``gap`` apart, as if they
had just arrived in that order.

Nothing here reads a clock: every call is given the time, so a test can drive it with its
own.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from stackmff.errors import StackError
from stackmff.io.paths import natural_key
from stackmff.watch.frames import COMPLETE, OWN, PENDING, Frame, scan

DEFAULT_GAP = 10.0
DEFAULT_SETTLE = 1.0


@dataclass(frozen=True)
class Rules:
    """How frames become stacks: ``gap`` seconds of quiet end a stack, ``layers`` frames
    end it sooner (when given), and a frame counts once unchanged for ``settle`` seconds."""

    gap: float = DEFAULT_GAP
    layers: int | None = None
    settle: float = DEFAULT_SETTLE

    def check(self) -> None:
        """Refuse rules that could never end a stack or count a frame.

        Raises:
            StackError: ``gap`` not above 0, ``layers`` below 2, or ``settle`` not between 0
                and ``gap``.
        """
        if not (math.isfinite(self.gap) and self.gap > 0):
            raise StackError(f"--gap must be more than 0 seconds, got {self.gap:g}")
        if self.layers is not None and self.layers < 2:
            raise StackError(f"--layers must be at least 2 (a stack has two frames or more), "
                             f"got {self.layers}")
        if not (math.isfinite(self.settle) and 0 < self.settle < self.gap):
            raise StackError(f"--settle must be more than 0 and less than --gap ({self.gap:g} "
                             f"s), got {self.settle:g}")


@dataclass
class Stack:
    """A stack being collected: its folder, its frames in arrival order, when any of its
    files last changed, and whether it takes more frames."""

    number: int
    folder: str
    frames: list[Frame] = field(default_factory=list)
    last_change: float = 0.0
    split: bool = False        # found at start, before a gap: it takes no more frames

    def full(self, rules: Rules) -> bool:
        return self.split or (rules.layers is not None and len(self.frames) >= rules.layers)

    def ended(self, now: float, rules: Rules) -> bool:
        if self.full(rules) and all(frame.state == COMPLETE for frame in self.frames):
            return True
        return now - self.last_change >= rules.gap

    def deadline(self, rules: Rules) -> float:
        """When the gap ends it unless a file of it changes."""
        return self.last_change + rules.gap


@dataclass
class Ended:
    """A stack at its end: its complete frames in natural name order (as ``stackmff fuse``
    orders a folder), and the frames left out with the reason."""

    stack: Stack
    frames: list[Frame]
    left_out: list[tuple[Frame, str]]

    @property
    def hint(self) -> str:
        """What it is named after: its folder, or for the watched folder's own frames the
        first frame's name without its suffix."""
        if self.stack.folder:
            return self.stack.folder
        first = (self.frames or [frame for frame, _ in self.left_out])[0]
        return first.path.stem


@dataclass
class Looked:
    """What one look at the folder found."""

    root: Path
    completed: list[tuple[Stack, Frame]] = field(default_factory=list)
    ended: list[Ended] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Arrivals:
    """The frames of a watched folder and the stacks they are collected into.

    Args:
        root: the watched folder (absolute).
        rules: see :class:`Rules`.
        skip: real paths never taken as frames or searched (OUTDIR, the preview).
        done: real paths of frames whose stacks a previous run finished (from the report).
        now: the clock at the start.
    """

    def __init__(self, root: Path, rules: Rules, skip: set[str], done: set[str],
                 now: float) -> None:
        self.root, self.rules, self.skip = root, rules, skip
        self.open: list[Stack] = []
        self.frames: dict[Path, tuple[Frame, Stack]] = {}
        self.past: dict[Path, tuple[int, int]] = {}   # frames of ended stacks, and our own
        self.last_change = now
        self._numbers = 0
        found = []
        for path, folder, signature in scan(root, skip):
            if done and os.path.realpath(path) in done:
                self.past[path] = signature
            else:
                found.append(Frame(path, folder, signature, now, (signature[1],
                                                                  natural_key(path))))
        for frame in sorted(found, key=lambda f: (f.folder, f.order)):
            stack = self._open_stack(frame.folder)
            if stack and stack.frames and not stack.full(rules) and \
                    frame.signature[1] - stack.frames[-1].signature[1] > rules.gap * 1e9:
                stack.split = True
            self._join(frame, now)

    def look(self, now: float) -> Looked:
        """Look at the folder now: new and changed files, frames that became complete, and
        the stacks that ended (their frames are not looked at again)."""
        looked = Looked(self.root)
        present = set()
        for path, folder, signature in scan(self.root, self.skip):
            present.add(path)
            if path in self.past:
                if self.past[path] != signature:
                    self.past[path] = signature
                    looked.notes.append(f"{path} changed after its stack ended: it is not "
                                        "fused again")
            elif path in self.frames:
                frame, stack = self.frames[path]
                if frame.observe(signature, now):
                    self._changed(stack, now)
            else:
                self._join(Frame(path, folder, signature, now, (now, natural_key(path))), now)
        for path in [p for p in self.frames if p not in present]:
            frame, stack = self.frames.pop(path)
            stack.frames.remove(frame)
            self._changed(stack, now)
        self.past = {p: s for p, s in self.past.items() if p in present}
        for stack in list(self.open):
            for frame in list(stack.frames):
                if frame.settle(now, self.rules.settle):
                    looked.completed.append((stack, frame))
                elif frame.state == OWN:
                    self._forget(frame, stack)
                    looked.notes.append(f"skipped {frame.path}: a file stackmff wrote, not a "
                                        "frame")
        for stack in list(self.open):
            if not stack.frames and now - stack.last_change >= self.rules.gap:
                self.open.remove(stack)
            elif stack.frames and stack.ended(now, self.rules):
                looked.ended.append(self._end(stack))
        return looked

    def deadline(self) -> float | None:
        """The next time a look could find something without a file changing: a frame
        settling, a gap ending."""
        times = [frame.changed + self.rules.settle for stack in self.open
                 for frame in stack.frames if frame.state == PENDING]
        times += [stack.deadline(self.rules) for stack in self.open]
        return min(times, default=None)

    @property
    def collecting(self) -> bool:
        """Whether a stack is open."""
        return bool(self.open)

    def open_frames(self) -> int:
        return sum(len(stack.frames) for stack in self.open)

    def _open_stack(self, folder: str) -> Stack | None:
        return next((s for s in reversed(self.open) if s.folder == folder), None)

    def _join(self, frame: Frame, now: float) -> None:
        stack = self._open_stack(frame.folder)
        if stack is None or stack.full(self.rules):
            self._numbers += 1
            stack = Stack(self._numbers, frame.folder)
            self.open.append(stack)
        stack.frames.append(frame)
        self.frames[frame.path] = (frame, stack)
        self._changed(stack, now)

    def _changed(self, stack: Stack, now: float) -> None:
        stack.last_change = self.last_change = now

    def _forget(self, frame: Frame, stack: Stack) -> None:
        stack.frames.remove(frame)
        del self.frames[frame.path]
        self.past[frame.path] = frame.signature

    def _end(self, stack: Stack) -> Ended:
        self.open.remove(stack)
        complete, left_out = [], []
        for frame in stack.frames:
            del self.frames[frame.path]
            self.past[frame.path] = frame.signature
            if frame.state == COMPLETE:
                complete.append(frame)
            else:
                left_out.append((frame, frame.why_incomplete()))
        complete.sort(key=lambda f: natural_key(f.path))
        return Ended(stack, complete, left_out)


__all__ = ["Arrivals", "Ended", "Looked", "Rules", "Stack"]
