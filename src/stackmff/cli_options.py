"""The options that ``fuse`` and ``batch`` share: registration, method, network, the map
edits after the method (``--halo``, ``--prefer``), the surface mesh; and how they become the
library's keyword arguments."""

from __future__ import annotations

import argparse

from stackmff.api import DEFAULT_METHOD
from stackmff.errors import StackError
from stackmff.methods import Option, all_options, get_method, list_methods, methods_taking


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


def add_fusion_options(parser: argparse.ArgumentParser, batch: bool = False) -> None:
    """Registration, method, network and mesh options: the same for one stack and for a
    batch (whose ``--mesh`` names a format, each stack's mesh named after it)."""
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
    add_prefer_option(method)
    add_method_options(parser)
    add_mesh_options(parser, batch)


def add_prefer_option(group) -> None:
    group.add_argument("--prefer", choices=("near", "far"),
                       help="where several layers are nearly as sharp (at least half the "
                            "sharpest), take the nearest or the farthest (the first image "
                            "focused nearest); for methods that select layers")


def add_mesh_options(parser: argparse.ArgumentParser, batch: bool = False) -> None:
    """``--mesh`` and how the surface is measured (docs/mesh.md)."""
    group = parser.add_argument_group("surface mesh (pip install \"stackmff[mesh]\")")
    if batch:
        group.add_argument("--mesh", choices=("glb", "obj", "ply", "stl"),
                           help="also write <name>.<format>: the surface (heights from the "
                                "focus map) textured with the fused image")
    else:
        group.add_argument("--mesh", metavar="PATH",
                           help="the surface (heights from the focus map) as .glb or .obj "
                                "(textured with the fused image), .ply (vertex colours) or "
                                ".stl (geometry)")
    group.add_argument("--mesh-faces", type=int, metavar="N",
                       help="the most triangles of the mesh (default 500000)")
    group.add_argument("--z-step", metavar="LENGTH",
                       help="the distance between layers with its unit (e.g. 0.05mm, 20um): "
                            "heights become lengths; a microscopy file's Z step is used "
                            "otherwise")
    group.add_argument("--pixel-size", metavar="LENGTH",
                       help="the size of a pixel on the subject (e.g. 4.5um); a microscopy "
                            "file's pixel size is used otherwise")


def mesh_options(args: argparse.Namespace) -> dict:
    """The mesh options as the library's keyword arguments (``mesh`` a path for ``fuse`` and
    ``regather``, a format for ``batch``)."""
    return {"mesh": args.mesh, "mesh_faces": args.mesh_faces, "z_step": args.z_step,
            "pixel_size": args.pixel_size}


def add_method_options(parser: argparse.ArgumentParser) -> None:
    """A flag for every option of the registry's tables that has one, as its table declares
    it. A flag not given sets nothing (so ``--tile 0``, one pass, is not mistaken for a flag
    left out): only those given reach the method, which refuses the ones it does not take (a
    classical method takes none)."""
    takers = option_takers()
    group = parser.add_argument_group(f"network (--method {', '.join(takers)})")
    for option in all_options():
        if option.flag_name is None:
            continue
        only = methods_taking(option.name)
        prefix = "" if only == takers else f"{', '.join(only)}: "
        group.add_argument(option.flag_name, dest=option.name, default=argparse.SUPPRESS,
                           help=prefix + option.help, **argument_kind(option))


def option_takers() -> list[str]:
    """The methods that take any option (the network's)."""
    return [method.name for method in list_methods() if method.options]


def argument_kind(option: Option) -> dict:
    """How argparse reads the option: a switch, a choice, or text its table checks."""
    if option.type is bool:  # a switch that sets the opposite of the default
        return {"action": "store_const", "const": not option.default}
    if option.choices:
        return {"choices": option.choices}
    return {"type": value_reader(option), "metavar": option.metavar}


def value_reader(option: Option):
    """The option's value from the command line's text, checked by its table: a usage error
    in one line names the flag and what it takes."""

    def read(text: str):
        words = dict(option.words)
        try:
            value = words[text] if text in words else parse_text(option.type, text)
        except ValueError:
            value = text
        if not option.fits(value):
            raise argparse.ArgumentTypeError(f"must be {option.rule(written=True)}, got {text}")
        return value

    read.__name__ = option.name
    return read


def parse_text(kind: type, text: str):
    """Text as a value of an option's type; a ``tuple`` is a comma list of numbers."""
    if kind is tuple:
        return tuple(float(part) for part in text.split(","))
    if kind in (int, float):
        return kind(text)
    return text  # str and paths: as written


def method_options(args: argparse.Namespace) -> dict:
    """The method options the user gave; an option the method does not take is refused in
    one line naming its flag."""
    table, given = all_options(), vars(args)
    options = {option.name: given[option.name] for option in table
               if option.flag_name is not None and option.name in given}
    taken = get_method(args.method).options
    unknown = [option for option in table if option.name in options and option.name not in taken]
    if unknown:
        flags = ", ".join(option.flag_name for option in unknown)
        takers = [name for name in option_takers()
                  if all(option.name in get_method(name).options for option in unknown)]
        which = ("the network methods" if takers == option_takers()
                 else "--method " + ", ".join(takers))
        raise StackError(f"{flags} applies to {which} only, not to --method {args.method}")
    return options


def add_photo_options(parser: argparse.ArgumentParser) -> None:
    """The options for photographs: the colour space a RAW stack is developed into, and
    which layer's metadata the fused image carries (docs/camera-files.md)."""
    from stackmff.io.colour import COLOUR_SPACES, DEFAULT_SPACE

    group = parser.add_argument_group("photographs (RAW, HEIC, JPEG: colour and metadata)")
    group.add_argument("--colour-space", choices=tuple(COLOUR_SPACES),
                       help=f"RAW stacks: develop into this space, its ICC profile embedded "
                            f"(default {DEFAULT_SPACE}; linear needs .tif or .png)")
    group.add_argument("--metadata-from", metavar="K", type=metadata_source,
                       help="the layer (0-based) whose EXIF, XMP and IPTC the fused image "
                            "carries (default: the reference layer, the middle one), or "
                            "'none'")


def metadata_source(text: str) -> int | str:
    """``--metadata-from``: a layer index, or ``none``."""
    if text == "none":
        return text
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a layer index (0, 1, ...) or 'none', got {text}")
    return int(text)


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
