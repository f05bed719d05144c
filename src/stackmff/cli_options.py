"""The options that ``fuse`` and ``batch`` share: registration, method, network; and how they
become the library's keyword arguments."""

from __future__ import annotations

import argparse

from stackmff.api import DEFAULT_METHOD
from stackmff.errors import StackError
from stackmff.fusion.blend import BLENDS
from stackmff.fusion.tiling import DEFAULT_MARGIN, MAX_MARGIN, PRECISIONS


def add_registration_options(group, with_switch: bool) -> None:
    from stackmff.registration import MODELS

    if with_switch:
        group.add_argument("--align", action="store_true",
                           help="register the layers to a reference layer before fusing")
    group.add_argument("--model", choices=MODELS, default="similarity",
                       help="transform model (default similarity: shift, rotation, scale)")
    group.add_argument("--reference", type=int, metavar="K",
                       help="reference layer index (default: the middle layer)")
    size = group.add_mutually_exclusive_group()
    size.add_argument("--crop", dest="keep_size", action="store_false", default=False,
                      help="crop to the area every layer covers (default)")
    size.add_argument("--keep-size", dest="keep_size", action="store_true", default=False,
                      help="keep the full frame; fill uncovered borders from the nearest layer")
    group.add_argument("--on-failure", choices=("error", "drop", "keep"), default="error",
                       help="a layer that cannot be aligned: stop with an error naming it "
                            "(default), drop it, or keep it unaligned")
    group.add_argument("--tolerance", type=float, default=0.6, metavar="SCORE",
                       help="least correlation (0..1) of an accepted alignment (default 0.6)")


def align_options(args) -> dict:
    reference = "middle" if args.reference is None else args.reference
    return {"reference": reference, "model": args.model, "keep_size": args.keep_size,
            "on_failure": args.on_failure, "tolerance": args.tolerance}


def add_fusion_options(parser: argparse.ArgumentParser) -> None:
    """Registration, method and network options: the same for one stack and for a batch."""
    add_registration_options(parser.add_argument_group("registration"), with_switch=True)
    method = parser.add_argument_group("fusion")
    method.add_argument("-m", "--method", default=DEFAULT_METHOD,
                        help=f"fusion method (default: {DEFAULT_METHOD}; "
                             "see `stackmff methods`)")
    method.add_argument("--halo", nargs="?", const="near-to-far",
                        choices=("near-to-far", "far-to-near"),
                        help="keep near objects' blur out of the far background beside them "
                             "(docs/halo.md); the value says how the stack runs "
                             "(default near-to-far: the first image focused nearest)")
    # network options default to None: only those given reach the method, which refuses
    # the ones it does not take (a classical method takes none)
    network = parser.add_argument_group("network (--method v3, v3+)")
    network.add_argument("--checkpoint", metavar="PATH",
                         help="trained weights (.pt); default: the shipped model")
    network.add_argument("--head", metavar="PATH",
                         help="v3+: the refinement head (.pt); default: the shipped head")
    network.add_argument("--device", choices=("cpu", "cuda"), help="default cpu")
    network.add_argument("--tile", type=tile_size, metavar="N",
                         help="tile side in pixels, 0 for one pass (default: auto, the largest "
                              "that bounds memory for the stack's layer count)")
    network.add_argument("--tile-margin", type=margin, metavar="N",
                         help=f"context around each tile, 0..{MAX_MARGIN} "
                              f"(default {DEFAULT_MARGIN})")
    network.add_argument("--tile-local-means", action="store_true",
                         help="let each tile take the network's global averages over itself, "
                              "skipping the first pass that takes them over the whole image: "
                              "faster with several tiles, the focus map changes at near-ties")
    network.add_argument("--precision", choices=PRECISIONS,
                         help="autocast precision of the per-layer network (default fp32)")
    network.add_argument("--blend", choices=BLENDS,
                         help="hard: copy every pixel from its most probable layer, no value "
                              "invented (default); soft: weight the layers by their "
                              "probabilities; band: hard where confident, soft across "
                              "focus-map boundaries (docs/methods.md)")
    network.add_argument("--blend-sigma", type=float, metavar="S",
                         help="smoothing of the probabilities in pixels (default 0.5 for soft "
                              "and band, 0 for hard)")
    network.add_argument("--blend-scales", type=scales, metavar="S,S",
                         help="average the probabilities over these input scales, e.g. "
                              "1,0.75 (default 1)")


def tile_size(text: str) -> int | str | None:
    if text == "auto":
        return text
    value = int(text)
    if value != 0 and value < 32:
        raise argparse.ArgumentTypeError(f"tile must be 0 or at least 32, got {value}")
    return value or None


def scales(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


def margin(text: str) -> int:
    value = int(text)
    if not 0 <= value <= MAX_MARGIN:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_MARGIN}, got {value}")
    return value


# --flag -> the method option it sets
NETWORK_FLAGS = {"checkpoint": "checkpoint", "head": "head", "device": "device", "tile": "tile",
                  "tile_margin": "margin", "precision": "precision", "blend": "blend",
                  "blend_sigma": "blend_sigma", "blend_scales": "blend_scales"}
FLAG_NAMES = {"checkpoint": "--checkpoint", "head": "--head", "device": "--device",
               "tile": "--tile", "margin": "--tile-margin", "precision": "--precision",
               "global_means": "--tile-local-means", "blend": "--blend",
               "blend_sigma": "--blend-sigma", "blend_scales": "--blend-scales"}


def method_options(args: argparse.Namespace) -> dict:
    """The method options the user gave; the method refuses those it does not take."""
    from stackmff.methods import get_method

    options = {option: getattr(args, flag) for flag, option in NETWORK_FLAGS.items()
               if getattr(args, flag) is not None}
    if args.tile_local_means:
        options["global_means"] = False
    unknown = sorted(set(options) - get_method(args.method).options)
    if unknown:
        flags = ", ".join(FLAG_NAMES[o] for o in unknown)
        raise StackError(f"{flags} applies to the network methods only, not to "
                         f"--method {args.method}")
    return options


def add_microscopy_options(parser: argparse.ArgumentParser, batch: bool = False) -> None:
    """The options for microscopy files (OME-TIFF, OME-Zarr, ImageJ hyperstacks): for one
    file (``fuse``: ``--height-map PATH``) or for each file of a batch (``--height-map``
    writes ``<name>_height_map.tif`` beside each fused image)."""
    group = parser.add_argument_group("microscopy (OME-TIFF, OME-Zarr, ImageJ hyperstacks)")
    group.add_argument("--focus-channel", metavar="C",
                       help="the channel that decides the focus: an index, a channel name from "
                            "the metadata, or 'mean' (default for several channels); every "
                            "channel is taken from the layers it chose"
                            + ("; the same for every file" if batch else ""))
    if batch:
        group.add_argument("--height-map", action="store_true",
                           help="also write <name>_height_map.tif: float32 heights in µm per "
                                "time point (plane index x Z step + Z origin)")
    else:
        group.add_argument("--height-map", metavar="PATH",
                           help="float32 heights in µm per time point (.tif): plane index x Z "
                                "step + Z origin")
