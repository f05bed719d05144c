"""The live preview's cost per frame against the stack's length (``stackmff watch --live``).

Feeds the frames of one synthetic stack to :class:`stackmff.watch.preview.LivePreview`, one at
a time, timing each update (the focus measure and the running selection) and each atomic
write of the picture, repeated; prints the median per frame for frames 3 and 30 and their
ratio. A flat cost means the 30th frame takes no longer than the 3rd, within 20%. Every
frame is sharp in a band of its own (a focus sweep), so each one changes the selection.
The write encodes the picture: its cost follows the picture's detail (the file's size is
printed too), not the number of frames.

Usage: .venv/bin/python benchmarks/watch_preview.py [--size 1024] [--frames 30] [--repeats 7]
       [--method depthmap] [--reverse]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from stackmff.io.pixels import from_float
from stackmff.testing import make_stack
from stackmff.watch.preview import LivePreview


def one_pass(frames: np.ndarray, path: Path, method: str
             ) -> tuple[list[float], list[float], list[int]]:
    """Seconds of each frame's update and of each write, and the picture's bytes."""
    preview = LivePreview(path, method)
    updates, writes, sizes = [], [], []
    write = preview.write
    preview.write = lambda pixels: writes.append(_timed(write, pixels))
    for frame in frames:
        started = time.perf_counter()
        preview.add(1, frame)
        updates.append(time.perf_counter() - started - writes[-1])
        sizes.append(path.stat().st_size)
    return updates, writes, sizes


def _timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--method", default="depthmap")
    parser.add_argument("--reverse", action="store_true",
                        help="sweep the other way (each frame then wins fewer pixels at first)")
    args = parser.parse_args()
    layers, _, _ = make_stack(n_layers=args.frames, height=args.size, width=args.size,
                              colour=True, blur_per_layer=0.4)
    frames = from_float(layers[::-1] if args.reverse else layers, np.dtype(np.uint8))
    del layers
    updates, writes = [], []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeats):
            update, write, sizes = one_pass(frames, Path(folder) / "preview.jpg", args.method)
            updates.append(update)
            writes.append(write)
    print(f"{args.frames} frames of {args.size}x{args.size} RGB, {args.method}"
          f"{', reversed sweep' if args.reverse else ''}, median of {args.repeats} runs")
    for label, runs in (("update", updates), ("write", writes)):
        third = statistics.median(run[2] for run in runs)
        last = statistics.median(run[-1] for run in runs)
        print(f"{label:>6}: frame 3 {third * 1000:.1f} ms, frame {args.frames} "
              f"{last * 1000:.1f} ms, ratio {last / third:.2f}")
    print(f"picture: {sizes[2]} bytes after frame 3, {sizes[-1]} after frame {args.frames}")


if __name__ == "__main__":
    main()
