"""The StackMFF V3 network as an entry of the method registry, with its options.

Importing this module registers ``v3`` and ``v3+`` (the network with the full-resolution
refinement head of :mod:`stackmff.model.refine`) without importing torch: the weights are
loaded when the method is prepared.
"""

from __future__ import annotations

from pathlib import Path

from stackmff.fusion.blend import BLENDS, check_blend
from stackmff.fusion.tiling import DEFAULT_MARGIN, MAX_MARGIN
from stackmff.methods import Fuser, FusionMethod, Option, OptionTable, add_method
from stackmff.weights import head_weights, network_weights

NAME = "v3"
DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "fp16")
MIN_TILE = 32  # the encoder's total stride: a smaller core is all padding

CHECKPOINT = Option("checkpoint", Path, None, metavar="PATH",
                    help="trained weights (.pt); default: the shipped model")
OPTIONS = OptionTable((
    CHECKPOINT,
    Option("device", str, "cpu", choices=DEVICES, help="default cpu"),
    Option("tile", int, "auto", low=MIN_TILE, words=(("auto", "auto"), ("0", None)),
           metavar="N", help="tile side in pixels, 0 for one pass (default: auto, the largest "
                             "that bounds memory for the stack's layer count)"),
    Option("margin", int, DEFAULT_MARGIN, low=0, high=MAX_MARGIN, flag="--tile-margin",
           label="tile margin", metavar="N",
           help=f"context around each tile, 0..{MAX_MARGIN} (default {DEFAULT_MARGIN})"),
    Option("global_means", bool, True, flag="--tile-local-means",
           help="let each tile take the network's global averages over itself, skipping the "
                "first pass that takes them over the whole image: faster with several tiles, "
                "the focus map changes at near-ties"),
    Option("native", bool, True, flag=None,
           help="on CPU, run the cross-layer attention as the compiled kernel where it builds"),
    Option("precision", str, "fp32", choices=PRECISIONS,
           help="autocast precision of the per-layer network (default fp32)"),
    Option("blend", str, "hard", choices=BLENDS,
           help="hard: copy every pixel from its most probable layer, no value invented "
                "(default); soft: weight the layers by their probabilities; band: hard where "
                "confident, soft across focus-map boundaries (docs/methods.md)"),
    # their ranges are check_blend's, which the method runs after the table (one place)
    Option("blend_sigma", float, None, metavar="S",
           help="smoothing of the probabilities in pixels (default 0.5 for soft and band, "
                "0 for hard)"),
    Option("blend_scales", tuple, (1.0,), metavar="S,S",
           help="average the probabilities over these input scales, e.g. 1,0.75 (default 1)"),
))
REFINED_OPTIONS = OptionTable((
    CHECKPOINT,
    Option("head", Path, None, metavar="PATH",
           help="the refinement head (.pt); default: the shipped head"),
    *OPTIONS[1:],
))


def check_network_options(checkpoint: str | Path | None = None, blend: str = "hard",
                          blend_sigma: float | None = None,
                          blend_scales: tuple[float, ...] = (1.0,), **_) -> None:
    """What the option table cannot say: that the weights exist, and the blend's settings
    together (each value has passed its option's check)."""
    network_weights(checkpoint)
    check_blend(blend, blend_sigma, blend_scales)


def prepare_network(checkpoint: str | Path | None = None, device: str = "cpu",
                    tile: int | str | None = "auto", margin: int = DEFAULT_MARGIN,
                    precision: str = "fp32", global_means: bool = True,
                    native: bool = True, blend: str = "hard", blend_sigma: float | None = None,
                    blend_scales: tuple[float, ...] = (1.0,),
                    refine_head: Path | None = None) -> Fuser:
    """Load the weights once; the returned fuser runs every stack through them. With
    ``refine_head`` (a ``v3+`` head's file) the network's logits pass through that head.
    The fuser checks each value by :data:`OPTIONS`; :func:`stackmff.prepare_method` has
    checked them all before."""
    from stackmff.fusion.predictor import StackFuser
    from stackmff.weights.checkpoint import load_checkpoint

    options = dict(device=device, tile=tile, margin=margin, precision=precision,
                   global_means=global_means, native=native, copy_model=False,
                   blend=check_blend(blend, blend_sigma, blend_scales))
    if refine_head is not None:
        from stackmff.fusion.refined import RefinedFuser
        from stackmff.weights.head import load_head

        head = load_head(refine_head)[0]
        return RefinedFuser(load_checkpoint(network_weights(checkpoint))[0], head, **options)
    return StackFuser(load_checkpoint(network_weights(checkpoint))[0], **options)


def selects_when_hard(blend: str = "hard", **_) -> bool:
    """Every output pixel is an input pixel with the hard gather only."""
    return blend == "hard"


add_method(FusionMethod(
    NAME,
    "StackMFF V3 network: per-pixel classification of the sharpest layer, pixels copied "
    "(--blend soft|band: weighted by probability; shipped weights, or --checkpoint)",
    prepare=prepare_network, options=OPTIONS, check=check_network_options,
    selects=selects_when_hard, rank=0, float_copy=False))


REFINED = "v3+"


def check_refined_options(head: str | Path | None = None, **options) -> None:
    """The network's own checks, and that the refinement head exists."""
    head_weights(head)
    check_network_options(**options)


def prepare_refined(head: str | Path | None = None, **options) -> Fuser:
    """The frozen network and its full-resolution refinement head, loaded once."""
    return prepare_network(refine_head=head_weights(head), **options)


add_method(FusionMethod(
    REFINED,
    "StackMFF V3 network refined at full resolution by a small learned head on its logits "
    "and two focus measures (--blend soft|band as for v3; shipped head, or --head)",
    prepare=prepare_refined, options=REFINED_OPTIONS, check=check_refined_options,
    selects=selects_when_hard, rank=0, float_copy=False))
