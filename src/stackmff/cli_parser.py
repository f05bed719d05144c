"""The ``stackmff`` command line: its subcommands and their options, as argparse parsers.

Usage errors end with one line pointing at the help and exit status 2.
"""

from __future__ import annotations

import argparse

from stackmff import __version__
from stackmff.cli_options import (
    add_fusion_options,
    add_mesh_options,
    add_microscopy_options,
    add_photo_options,
    add_prefer_option,
    add_registration_options,
)
from stackmff.outputs import CONFIDENCE, FOCUS_MAP, INDICES
from stackmff.watch.grouping import DEFAULT_GAP, DEFAULT_SETTLE


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line too, pointing at the help (subcommands inherit this)."""

    def error(self, message: str):
        self.exit(2, f"stackmff: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="stackmff",
        description="Fuse a focus stack (photos focused at different depths) into one "
                    "all-in-focus image.")
    parser.add_argument("--version", action="version", version=f"stackmff {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    _add_fuse(commands)
    _add_batch(commands)
    _add_watch(commands)
    _add_methods_and_align(commands)
    _add_regather(commands)
    _add_bench(commands)
    _add_synth(commands)
    _add_train(commands)
    return parser


def _add_fuse(commands) -> None:
    """``fuse``: one stack (or one microscopy file) into one image and its maps."""
    fuse = commands.add_parser(
        "fuse", help="fuse a focus stack into one image",
        description="Fuse a focus stack into one all-in-focus image, written in the input's "
                    "bit depth.")
    inputs = fuse.add_argument_group("input")
    inputs.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="a folder (natural order), a glob, image files (camera RAW and "
                             "HEIC too), one multi-page TIFF, or one OME-TIFF, OME-Zarr or "
                             "ImageJ hyperstack")
    add_fusion_options(fuse)
    add_photo_options(fuse)
    add_microscopy_options(fuse)
    output = fuse.add_argument_group("output")
    output.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="fused image (.png/.tif keep 16 bit; .jpg is 8-bit; "
                             "microscopy: .ome.tif or .ome.zarr, TCYX)")
    output.add_argument("--focus-map", metavar="PATH",
                        help="focus map picture with a colour bar; the raw layer indices go "
                             f"to <stem>{INDICES}.png (16-bit; .tif beside a .tif)")
    output.add_argument("--confidence", metavar="PATH",
                        help="per-pixel confidence, 16-bit grey (white = certain)")
    output.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")


def _add_batch(commands) -> None:
    """``batch``: every stack found, into a folder mirroring the inputs."""
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
    add_fusion_options(batch, batch=True)
    add_photo_options(batch)
    add_microscopy_options(batch, batch=True)
    run = batch.add_argument_group("execution")
    run.add_argument("--workers", type=int, metavar="N",
                     help="worker processes (default: the machine's cores)")
    run.add_argument("--dask", metavar="ADDRESS",
                     help="run on a Dask cluster: a scheduler address (tcp://host:8786), or "
                          "'local' for a LocalCluster of --workers processes")
    run.add_argument("--force", action="store_true",
                     help="recompute stacks whose outputs already exist")
    add_batch_outputs(batch)


def add_batch_outputs(parser: argparse.ArgumentParser) -> None:
    """OUTDIR and what is written there for each stack: the same for batch and watch."""
    batch_output = parser.add_argument_group("output")
    batch_output.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    batch_output.add_argument("--format", action="append",
                              choices=("png", "tif", "jpg", "ome.tif", "ome.zarr"),
                              help="file type of the fused images: png (default), tif or jpg "
                                   "for stacks of images (png and tif keep 16 bit); ome.tif "
                                   "(default) or ome.zarr for microscopy files; give it twice "
                                   "to set both")
    batch_output.add_argument("--focus-map", action="store_true",
                              help=f"also write <name>{FOCUS_MAP}.png and "
                                   f"<name>{FOCUS_MAP}{INDICES}.png (.tif for microscopy "
                                   "files)")
    batch_output.add_argument("--confidence", action="store_true",
                              help=f"also write <name>{CONFIDENCE}.png (.tif for microscopy "
                                   "files)")


def _add_watch(commands) -> None:
    """``watch``: stacks fused as their frames land in a folder."""
    watch = commands.add_parser(
        "watch", help="fuse each stack as its frames land in a folder, with a live preview",
        description="Watch FOLDER while a camera or microscope writes frames to it; fuse each "
                    "stack into OUTDIR as it ends, as batch does (same outputs, "
                    "OUTDIR/batch.jsonl, resume). A stack is a subfolder's frames, or a run "
                    "of frames in FOLDER itself; it ends after --gap seconds without a change "
                    "or at --layers frames. Ctrl-C stops; a restart skips what is done "
                    "(docs/watch.md).")
    watch.add_argument("folder", metavar="FOLDER", help="where the frames land")
    add_fusion_options(watch, batch=True)
    add_photo_options(watch)
    stacks = watch.add_argument_group("stacks")
    stacks.add_argument("--gap", type=float, default=DEFAULT_GAP, metavar="SECONDS",
                        help="a stack ends when none of its frames has changed for this long "
                             f"(default {DEFAULT_GAP:g})")
    stacks.add_argument("--layers", type=int, metavar="N",
                        help="a stack ends at N frames (or at the gap, if sooner)")
    stacks.add_argument("--settle", type=float, default=DEFAULT_SETTLE, metavar="SECONDS",
                        help="a frame counts once its size has not changed for this long and "
                             f"it decodes (default {DEFAULT_SETTLE:g})")
    run = watch.add_argument_group("watching")
    run.add_argument("--live", metavar="PREVIEW",
                     help="a picture (.jpg, .png, .tif) rewritten after every frame: the "
                          "stack so far, then its fused image")
    run.add_argument("--poll", type=float, metavar="SECONDS",
                     help="look every SECONDS instead of waiting for file system events "
                          "(network shares; needs no watchdog)")
    run.add_argument("--stop-when-idle", type=float, metavar="SECONDS",
                     help="stop once no stack is open and no frame has changed for this long")
    add_batch_outputs(watch)


def _add_methods_and_align(commands) -> None:
    """``methods`` (the list) and ``align`` (write the registered layers)."""
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


def _add_regather(commands) -> None:
    """``regather``: the fused image again from an edited focus map."""
    regather = commands.add_parser(
        "regather", help="compose the fused image again from an edited focus map",
        description="Copy every pixel from the layer an edited index map names (the "
                    f"<stem>{INDICES}.png of 'stackmff fuse --focus-map', edited in any image "
                    "editor), at the stack's bit depth. Give the inputs the map was made from; "
                    "for a fuse with --align, the layers written by 'stackmff align'.")
    regather.add_argument("inputs", nargs="+", metavar="INPUT",
                          help="the stack the map was made from, as given to fuse")
    regather.add_argument("--focus-map", required=True, metavar="INDICES",
                          help=f"the edited <stem>{INDICES}.png (0-based layer indices)")
    regather.add_argument("-o", "--output", required=True, metavar="OUT",
                          help="fused image (.png/.tif keep 16 bit)")
    regather.add_argument("--confidence", metavar="CONF_IN",
                          help="the fuse's confidence picture, carried over to "
                               "--confidence-out with 0 where the map was edited")
    regather.add_argument("--original-map", metavar="INDICES",
                          help=f"the unedited <stem>{INDICES}.png, to find the edited pixels")
    regather.add_argument("--confidence-out", metavar="PATH",
                          help="where the carried-over confidence goes (16-bit grey)")
    add_prefer_option(regather)
    add_mesh_options(regather)
    regather.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")


def _add_bench(commands) -> None:
    """``bench``: every method on the ground-truth suites."""
    bench = commands.add_parser(
        "bench", help="benchmark every method on the ground-truth suites",
        description="Run every method (ours and installed peers: enfuse, focus-stack) on "
                    "every benchmark stack and write a Markdown report with plots.")
    bench.add_argument("--suite", nargs="+", metavar="NAME",
                       help="stack-size, order, interference, pairs, devernay-office, "
                            "lytro-epfl48, microscopy, hci-lightfield, raytraced (default: "
                            "these nine); out-of-domain (the five that the training renderer "
                            "never made: hci-lightfield, devernay-office, lytro-epfl48, "
                            "raytraced, microscopy); validation, validation-order, "
                            "validation-interference (held-out scenes, to judge a model)")
    bench.add_argument("--methods", nargs="+", metavar="NAME", help="default: all available")
    bench.add_argument("--quick", action="store_true", help="small crops, fewer variants, one row per method family (the network's blends, v3+ and openfocus's settings when named by --methods); the real stacks only when named by --suite")
    bench.add_argument("--checkpoint", metavar="PATH", help="weights for the v3 rows (default: the shipped model)")
    bench.add_argument("--head", metavar="PATH", help="head for the v3+ rows (default: the shipped head)")
    bench.add_argument("--raytraced", default="runs/raytraced-validation", metavar="DIR",
                       help="the ray-traced validation split, rendered there on first use "
                            "(needs POV-Ray; default runs/raytraced-validation)")
    bench.add_argument("--data", default="../shared/data",
                       help="folder with the real ground-truth stacks (default ../shared/data)")
    bench.add_argument("--out", default="docs/benchmarks.md", metavar="PATH")
    bench.add_argument("--rows", metavar="PATH",
                       help="also append every stack's scores to this JSON-lines file")
    bench.add_argument("--no-plots", action="store_true")


def _add_synth(commands) -> None:
    """``synth``: synthetic stacks with ground truth."""
    synth = commands.add_parser(
        "synth", help="write synthetic stacks with ground truth",
        description="Render synthetic focus stacks and write them with their all-in-focus "
                    "image and ground-truth focus map: dead-leaves scenes and photos with "
                    "procedural depth (physical, faithful), or random 3D scenes ray-traced "
                    "by POV-Ray through a real aperture (raytraced). Stack i is drawn from "
                    "the seed (SEED, i); stacks already in DIR are kept, so a rerun "
                    "continues the set.")
    synth.add_argument("-o", "--output", required=True, metavar="DIR")
    synth.add_argument("--renderer", choices=("physical", "faithful", "raytraced"),
                       default="physical")
    synth.add_argument("--layers", type=layer_range, default=(8, 8), metavar="N|LOW-HIGH",
                       help="layers per stack, or a range drawn from per stack (default 8)")
    synth.add_argument("--count", type=int, default=4)
    synth.add_argument("--size", type=int, default=256, metavar="PX")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--split", choices=("validation", "train"), default="validation",
                       help="draw photos (and ray-traced scene families) from the held-out "
                            "side, never trained on (default), or from the training side")


def layer_range(text: str) -> tuple[int, int]:
    """``N`` or ``LOW-HIGH``, as an inclusive range."""
    low, _, high = text.partition("-")
    try:
        return int(low), int(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or LOW-HIGH, got {text!r}") from None


def _add_train(commands) -> None:
    """``train``: the network or the v3+ head, from a TOML config."""
    train = commands.add_parser(
        "train", help="train the network, or the v3+ head, on synthetic stacks",
        description="Train StackMFF V3 on synthetic focus stacks, or, with target = \"head\" "
                    "in the config, the v3+ refinement head on the frozen network's cached "
                    "logits. The TOML config is the whole interface; it is stored in every "
                    "checkpoint (<out>/last.pt), next to a CSV log (<out>/log.csv).")
    train.add_argument("--config", required=True, metavar="TOML",
                       help="e.g. configs/default.toml (network) or configs/head.toml (v3+ head)")
    train.add_argument("--resume", action="store_true",
                       help="continue from <out>/last.pt (weights, optimizer, step, time)")
    train.add_argument("--overwrite", action="store_true",
                       help="replace the run in <out> (once the new run has completed a step)")
    train.add_argument("--max-minutes", type=float, metavar="M",
                       help="stop after M minutes of training in total (overrides the config)")
