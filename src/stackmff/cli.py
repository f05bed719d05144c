"""Command-line interface: thin subcommands over the library.

Bad input ends with one line on stderr and exit status 2 (usage) or 1 (input); nothing is
written then.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from stackmff.api import DEFAULT_METHOD, fuse_files
from stackmff.cli_options import align_options, mesh_options, method_options
from stackmff.cli_parser import build_parser
from stackmff.errors import StackError
from stackmff.io import load_stack
from stackmff.methods import list_methods
from stackmff.runtime.allocator import keep_freed_memory


def _align(stack, args):
    from stackmff.registration import align_stack

    return align_stack(stack.layers, **align_options(args))


def _run_fuse(args: argparse.Namespace) -> None:
    report = fuse_files(args.inputs, args.output, args.method, focus_map=args.focus_map,
                        confidence=args.confidence,
                        align=align_options(args) if args.align else None,
                        focus_channel=args.focus_channel, height_map=args.height_map,
                        halo=args.halo, prefer=args.prefer, colour_space=args.colour_space,
                        metadata_from=args.metadata_from, **mesh_options(args),
                        **method_options(args))
    if not args.quiet:
        times = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in report.seconds.items())
        stacks = f"{report.stacks} stacks of " if report.stacks > 1 else ""
        channels = f" x {report.channels} channels" if report.channels > 1 else ""
        print(f"fused {stacks}{report.layers} layers of {report.width}x{report.height}"
              f"{channels} with {report.method} ({times})")
        for path in report.written:
            print(f"wrote {path}")


def _batch_keywords(args: argparse.Namespace) -> dict:
    """What batch and watch pass to ``fuse_many`` for every stack, from the options they
    share."""
    return dict(focus_map=args.focus_map, confidence=args.confidence,
                align=align_options(args) if args.align else None,
                format=args.format or "png", halo=args.halo, prefer=args.prefer,
                colour_space=args.colour_space, metadata_from=args.metadata_from,
                **mesh_options(args), **method_options(args))


def _run_batch(args: argparse.Namespace) -> int:
    from stackmff.batch import fuse_many, summary

    results = fuse_many(args.inputs, args.output, args.method, client=args.dask,
                        workers=args.workers, force=args.force,
                        focus_channel=args.focus_channel, height_map=args.height_map,
                        **_batch_keywords(args))
    return summary(results)


def _run_watch(args: argparse.Namespace) -> int:
    from stackmff.watch import Rules, watch_folder

    done = watch_folder(args.folder, args.output, args.method,
                        rules=Rules(args.gap, args.layers, args.settle), live=args.live,
                        poll=args.poll, stop_when_idle=args.stop_when_idle,
                        **_batch_keywords(args))
    print(f"watch: {done.count('ok')} fused, {done.count('skipped')} skipped (done before), "
          f"{done.count('failed')} failed, {len(done.too_small)} too small to fuse")
    return 1 if done.count("failed") else 0


def _run_train(args: argparse.Namespace) -> None:
    import dataclasses

    from stackmff.training import load_config, train
    from stackmff.training.loop import TrainingInterrupted

    config = load_config(args.config)  # checks every key; StackError names the bad one
    if args.max_minutes is not None:
        config = dataclasses.replace(
            config, run=dataclasses.replace(config.run, max_minutes=args.max_minutes))
    try:
        last = train(config, resume=args.resume, overwrite=args.overwrite)
    except TrainingInterrupted as stopped:  # main reports it and exits 130 or 143
        if stopped.checkpoint:
            print(f"stackmff: training stopped at step {stopped.step}; checkpoint in "
                  f"{stopped.checkpoint}", file=sys.stderr)
        interrupt = _Terminated if stopped.signum == signal.SIGTERM else KeyboardInterrupt
        raise interrupt() from None
    print(f"wrote {last}")


def _run_align(args: argparse.Namespace) -> None:
    from stackmff.registration.output import write_aligned

    stack = load_stack(args.inputs, match_sizes=True)
    started = time.perf_counter()
    alignment = _align(stack, args)
    elapsed = time.perf_counter() - started
    reference = len(stack) // 2 if args.reference is None else args.reference
    written = write_aligned(stack, alignment, args.output, args.model, reference)
    for k in alignment.failed:
        verdict = "dropped" if args.on_failure == "drop" else "kept unaligned"
        print(f"stackmff: warning: layer {k} ({stack.paths[k].name}) could not be aligned "
              f"(score {alignment.scores[k]:.2f}); {verdict}", file=sys.stderr)
    y0, y1, x0, x1 = alignment.crop
    print(f"aligned {len(alignment.indices)} of {len(stack)} layers to layer {reference} in "
          f"{elapsed:.1f} s; output {x1 - x0}x{y1 - y0}; wrote {len(written)} files to "
          f"{args.output}")


def _run_regather(args: argparse.Namespace) -> None:
    from stackmff.regather import regather_files

    written = regather_files(args.inputs, args.focus_map, args.output,
                             confidence=args.confidence, original_map=args.original_map,
                             confidence_out=args.confidence_out, prefer=args.prefer,
                             **mesh_options(args))
    if not args.quiet:
        for path in written:
            print(f"wrote {path}")


def _run_bench(args: argparse.Namespace) -> None:
    from stackmff.evaluation.bench import run_bench

    out = run_bench(args.suite, args.methods, args.quick, Path(args.data), Path(args.out),
                    args.checkpoint, plots=not args.no_plots, raytraced=Path(args.raytraced),
                    head=args.head, rows_out=Path(args.rows) if args.rows else None)
    print(f"wrote {out}")


def _run_synth(args: argparse.Namespace) -> None:
    from stackmff.data.export import write_synthetic_stacks

    done = write_synthetic_stacks(args.output, args.count, args.layers, args.size,
                                  args.renderer, args.seed, args.split == "validation",
                                  show_progress=True)
    low, high = args.layers
    layers = str(low) if low == high else f"{low} to {high}"
    rate = (f": {done.frames} frames in {done.seconds:.0f} s, "
            f"{60 * done.frames / done.seconds:.1f} frames per minute" if done.stacks else "")
    print(f"{len(done.folders)} stacks of {layers} layers in {args.output} "
          f"({done.stacks} rendered now{rate})")


def _run_methods() -> None:
    rows = [(m.name, m.summary) for m in list_methods()]
    width = max(len(name) for name, _ in rows)
    for name, summary in rows:
        default = " (default)" if name == DEFAULT_METHOD else ""
        print(f"{name:<{width}}  {summary}{default}")


class _Terminated(KeyboardInterrupt):
    """SIGTERM, sent down the same path as Ctrl-C so that every cleanup runs."""


def _on_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second one ends the process at once
    raise _Terminated


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into an interrupt inside the block; signals reach the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command.

    Args:
        argv: the arguments; default the process's own.

    Returns:
        The exit status: 0 done, 1 bad input, 2 usage, 130 after SIGINT, 143 after SIGTERM.
    """
    with _sigterm_as_interrupt():
        try:
            return _main(argv)
        except KeyboardInterrupt as exc:
            print("stackmff: interrupted", file=sys.stderr)
            return 143 if isinstance(exc, _Terminated) else 130
        finally:
            if argv is None:  # the process ends next: spare its exit the collector's last
                gc.freeze()   # pass over every object (0.45 s once torch is loaded)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    keep_freed_memory()  # before any worker thread: see stackmff.runtime.allocator
    if args.command is None:
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = _show_warning
            if args.command == "fuse":
                _run_fuse(args)
            elif args.command == "batch":
                return _run_batch(args)
            elif args.command == "watch":
                return _run_watch(args)
            elif args.command == "train":
                _run_train(args)
            elif args.command == "synth":
                _run_synth(args)
            elif args.command == "align":
                _run_align(args)
            elif args.command == "regather":
                _run_regather(args)
            elif args.command == "bench":
                _run_bench(args)
            else:
                _run_methods()
    except (StackError, ValueError) as exc:
        print(f"stackmff: error: {exc}", file=sys.stderr)
        return 1
    except MemoryError:
        print("stackmff: error: out of memory; try fewer or smaller images", file=sys.stderr)
        return 1
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"stackmff: warning: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
