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

from stackmff import __version__
from stackmff.api import DEFAULT_METHOD, fuse_files
from stackmff.cli_options import (
    add_fusion_options,
    add_microscopy_options,
    add_registration_options,
    align_options,
    method_options,
)
from stackmff.errors import StackError
from stackmff.io import load_stack
from stackmff.methods import list_methods
from stackmff.runtime.allocator import keep_freed_memory


def _align(stack, args):
    from stackmff.registration import align_stack

    return align_stack(stack.layers, **align_options(args))


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line too, pointing at the help (subcommands inherit this)."""

    def error(self, message: str):
        self.exit(2, f"stackmff: error: {message} (see '{self.prog} --help')\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="stackmff",
        description="Fuse a focus stack (photos focused at different depths) into one "
                    "all-in-focus image.")
    parser.add_argument("--version", action="version", version=f"stackmff {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    fuse = commands.add_parser(
        "fuse", help="fuse a focus stack into one image",
        description="Fuse a focus stack into one all-in-focus image, written in the input's "
                    "bit depth.")
    inputs = fuse.add_argument_group("input")
    inputs.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="a folder (natural order), a glob, image files, one "
                             "multi-page TIFF, or one OME-TIFF, OME-Zarr or ImageJ hyperstack")
    add_fusion_options(fuse)
    add_microscopy_options(fuse)
    output = fuse.add_argument_group("output")
    output.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="fused image (.png/.tif keep 16 bit; .jpg is 8-bit; "
                             "microscopy: .ome.tif or .ome.zarr, TCYX)")
    output.add_argument("--focus-map", metavar="PATH",
                        help="focus map picture with a colour bar; the raw layer indices go "
                             "to <stem>_indices.png (16-bit)")
    output.add_argument("--confidence", metavar="PATH",
                        help="per-pixel confidence, 16-bit grey (white = certain)")
    output.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")

    batch = commands.add_parser(
        "batch", help="fuse many stacks: locally or on a Dask cluster, resumable",
        description="Fuse every stack found in the inputs into OUTDIR, mirroring the input "
                    "tree; stacks whose outputs exist are skipped; one report line per stack "
                    "in OUTDIR/batch.jsonl. Exit status 1 if any stack failed.")
    batch.add_argument("inputs", nargs="+", metavar="INPUT",
                       help="folders (each folder holding two images or more is a stack), "
                            "globs, multi-page TIFFs, microscopy files (OME-TIFF, OME-Zarr, "
                            "ImageJ hyperstacks: one stack each), or a .txt/.csv list of "
                            "stack paths")
    add_fusion_options(batch)
    add_microscopy_options(batch, batch=True)
    run = batch.add_argument_group("execution")
    run.add_argument("--workers", type=int, metavar="N",
                     help="worker processes (default: the machine's cores)")
    run.add_argument("--dask", metavar="ADDRESS",
                     help="run on a Dask cluster: a scheduler address (tcp://host:8786), or "
                          "'local' for a LocalCluster of --workers processes")
    run.add_argument("--force", action="store_true",
                     help="recompute stacks whose outputs already exist")
    batch_output = batch.add_argument_group("output")
    batch_output.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    batch_output.add_argument("--format", action="append",
                              choices=("png", "tif", "jpg", "ome.tif", "ome.zarr"),
                              help="file type of the fused images: png (default), tif or jpg "
                                   "for stacks of images (png and tif keep 16 bit); ome.tif "
                                   "(default) or ome.zarr for microscopy files; give it twice "
                                   "to set both")
    batch_output.add_argument("--focus-map", action="store_true",
                              help="also write <name>_focus_map.png and "
                                   "<name>_focus_map_indices.png (.tif for microscopy files)")
    batch_output.add_argument("--confidence", action="store_true",
                              help="also write <name>_confidence.png (.tif for microscopy "
                                   "files)")

    commands.add_parser("methods", help="list the fusion methods",
                        description="List the fusion methods, one line each.")

    align = commands.add_parser(
        "align", help="register the layers of a stack and write them",
        description="Align every layer to a reference layer (robust to defocus and exposure "
                    "drift) and write the aligned layers, with the same names and bit depth, "
                    "plus transforms.json.")
    align_inputs = align.add_argument_group("input")
    align_inputs.add_argument("inputs", nargs="+", metavar="INPUT")
    add_registration_options(align.add_argument_group("registration"), with_switch=False)
    align_output = align.add_argument_group("output")
    align_output.add_argument("-o", "--output", required=True, metavar="OUTDIR")

    regather = commands.add_parser(
        "regather", help="compose the fused image again from an edited focus map",
        description="Copy every pixel from the layer an edited index map names (the "
                    "<stem>_indices.png of 'stackmff fuse --focus-map', edited in any image "
                    "editor), at the stack's bit depth. Give the inputs the map was made from; "
                    "for a fuse with --align, the layers written by 'stackmff align'.")
    regather.add_argument("inputs", nargs="+", metavar="INPUT",
                          help="the stack the map was made from, as given to fuse")
    regather.add_argument("--focus-map", required=True, metavar="INDICES",
                          help="the edited <stem>_indices.png (0-based layer indices)")
    regather.add_argument("-o", "--output", required=True, metavar="OUT",
                          help="fused image (.png/.tif keep 16 bit)")
    regather.add_argument("--confidence", metavar="CONF_IN",
                          help="the fuse's confidence picture, carried over to "
                               "--confidence-out with 0 where the map was edited")
    regather.add_argument("--original-map", metavar="INDICES",
                          help="the unedited <stem>_indices.png, to find the edited pixels")
    regather.add_argument("--confidence-out", metavar="PATH",
                          help="where the carried-over confidence goes (16-bit grey)")
    regather.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")

    bench = commands.add_parser(
        "bench", help="benchmark every method on the ground-truth suites",
        description="Run every method (ours and installed peers: enfuse, focus-stack) on "
                    "every benchmark stack and write a Markdown report with plots.")
    bench.add_argument("--suite", nargs="+", metavar="NAME",
                       help="stack-size, order, interference, pairs, devernay-office, "
                            "lytro-epfl48, microscopy (default: these seven); validation, "
                            "validation-order, "
                            "validation-interference (held-out scenes, to judge a model)")
    bench.add_argument("--methods", nargs="+", metavar="NAME", help="default: all available")
    bench.add_argument("--quick", action="store_true", help="small crops, fewer variants; the real stacks only when named by --suite")
    bench.add_argument("--checkpoint", metavar="PATH", help="weights for the v3 rows (default: the shipped model)")
    bench.add_argument("--data", default="../shared/data",
                       help="folder with the real ground-truth stacks (default ../shared/data)")
    bench.add_argument("--out", default="docs/benchmarks.md", metavar="PATH")
    bench.add_argument("--no-plots", action="store_true")

    synth = commands.add_parser(
        "synth", help="write synthetic stacks with ground truth",
        description="Render synthetic focus stacks (dead-leaves scenes and held-out photos "
                    "with procedural depth) and write them with their all-in-focus image and "
                    "ground-truth focus map.")
    synth.add_argument("-o", "--output", required=True, metavar="DIR")
    synth.add_argument("--renderer", choices=("physical", "faithful"), default="physical")
    synth.add_argument("--layers", type=int, default=8, metavar="N")
    synth.add_argument("--count", type=int, default=4)
    synth.add_argument("--size", type=int, default=256, metavar="PX")
    synth.add_argument("--seed", type=int, default=0)

    train = commands.add_parser(
        "train", help="train the network on synthetic stacks",
        description="Train StackMFF V3 on synthetic focus stacks. The TOML config is the whole "
                    "interface; it is stored in every checkpoint (<out>/last.pt), next to a "
                    "CSV log (<out>/log.csv).")
    train.add_argument("--config", required=True, metavar="TOML", help="e.g. configs/default.toml")
    train.add_argument("--resume", action="store_true",
                       help="continue from <out>/last.pt (weights, optimizer, step, time)")
    train.add_argument("--overwrite", action="store_true",
                       help="replace the run in <out> (once the new run has completed a step)")
    train.add_argument("--max-minutes", type=float, metavar="M",
                       help="stop after M minutes of training in total (overrides the config)")
    return parser


def _run_fuse(args: argparse.Namespace) -> None:
    report = fuse_files(args.inputs, args.output, args.method, focus_map=args.focus_map,
                        confidence=args.confidence,
                        align=align_options(args) if args.align else None,
                        focus_channel=args.focus_channel, height_map=args.height_map,
                        **method_options(args))
    if not args.quiet:
        times = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in report.seconds.items())
        stacks = f"{report.stacks} stacks of " if report.stacks > 1 else ""
        channels = f" x {report.channels} channels" if report.channels > 1 else ""
        print(f"fused {stacks}{report.layers} layers of {report.width}x{report.height}"
              f"{channels} with {report.method} ({times})")
        for path in report.written:
            print(f"wrote {path}")


def _run_batch(args: argparse.Namespace) -> int:
    from stackmff.batch import fuse_many, summary

    results = fuse_many(args.inputs, args.output, args.method, client=args.dask,
                        workers=args.workers, focus_map=args.focus_map,
                        confidence=args.confidence,
                        align=align_options(args) if args.align else None,
                        format=args.format or "png", force=args.force,
                        focus_channel=args.focus_channel, height_map=args.height_map,
                        **method_options(args))
    return summary(results)


def _run_train(args: argparse.Namespace) -> None:
    import dataclasses

    from stackmff.training import TrainConfig, train
    from stackmff.training.loop import TrainingInterrupted

    config = TrainConfig.load(args.config)  # checks every key; StackError names the bad one
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
                             confidence_out=args.confidence_out)
    if not args.quiet:
        for path in written:
            print(f"wrote {path}")


def _run_bench(args: argparse.Namespace) -> None:
    from stackmff.evaluation.bench import run_bench

    out = run_bench(args.suite, args.methods, args.quick, Path(args.data), Path(args.out),
                    args.checkpoint, plots=not args.no_plots)
    print(f"wrote {out}")


def _run_synth(args: argparse.Namespace) -> None:
    from stackmff.data.export import write_synthetic_stacks

    folders = write_synthetic_stacks(args.output, args.count, args.layers, args.size,
                                     args.renderer, args.seed)
    print(f"wrote {len(folders)} stacks of {args.layers} layers to {args.output}")


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
    parser = _build_parser()
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
