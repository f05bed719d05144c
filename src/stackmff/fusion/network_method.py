"""The StackMFF V3 network as an entry of the method registry, with its options.

Importing this module registers ``v3`` and ``v3+`` (the network with the full-resolution
refinement head of :mod:`stackmff.model.refine`) without importing torch: the weights are
loaded when the method is prepared.
"""

from __future__ import annotations

from pathlib import Path

from stackmff.errors import StackError
from stackmff.fusion.blend import check_blend
from stackmff.fusion.tiling import DEFAULT_MARGIN, MAX_MARGIN, PRECISIONS
from stackmff.methods import Fuser, FusionMethod, add_method
from stackmff.weights import head_weights, network_weights

NAME = "v3"
DEVICES = ("cpu", "cuda")
OPTIONS = frozenset({"checkpoint", "device", "tile", "margin", "precision", "global_means",
                     "native", "blend", "blend_sigma", "blend_scales"})


def check_network_options(checkpoint: str | Path | None = None, device: str = "cpu",
                          tile: int | str | None = "auto", margin: int = DEFAULT_MARGIN,
                          precision: str = "fp32", global_means: bool = True,
                          native: bool = True, blend: str = "hard",
                          blend_sigma: float | None = None,
                          blend_scales: tuple[float, ...] = (1.0,)) -> None:
    """Every option's range, and that the weights exist, before anything is loaded."""
    network_weights(checkpoint)
    if device not in DEVICES:
        raise StackError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if precision not in PRECISIONS:
        raise StackError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if tile != "auto" and tile is not None and (
            isinstance(tile, bool) or not isinstance(tile, int) or tile < 32):
        raise StackError(f"tile must be 'auto', None (one pass) or at least 32 pixels, got {tile!r}")
    if (isinstance(margin, bool) or not isinstance(margin, int)
            or not 0 <= margin <= MAX_MARGIN):
        raise StackError(f"tile margin must be an integer from 0 to {MAX_MARGIN}, got {margin!r}")
    for name, value in (("global_means", global_means), ("native", native)):
        if not isinstance(value, bool):
            raise StackError(f"{name} must be True or False, got {value!r}")
    check_blend(blend, blend_sigma, blend_scales)


def prepare_network(checkpoint: str | Path | None = None, device: str = "cpu",
                    tile: int | str | None = "auto", margin: int = DEFAULT_MARGIN,
                    precision: str = "fp32", global_means: bool = True,
                    native: bool = True, blend: str = "hard", blend_sigma: float | None = None,
                    blend_scales: tuple[float, ...] = (1.0,),
                    refine_head: Path | None = None) -> Fuser:
    """Load the weights once; the returned fuser runs every stack through them. With
    ``refine_head`` (a ``v3+`` head's file) the network's logits pass through that head."""
    check_network_options(checkpoint, device, tile, margin, precision, global_means, native,
                          blend, blend_sigma, blend_scales)
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
    selects=selects_when_hard, rank=0))


REFINED = "v3+"


def check_refined_options(head: str | Path | None = None, **options) -> None:
    """The network's options, and that the refinement head exists."""
    head_weights(head)
    check_network_options(**options)


def prepare_refined(head: str | Path | None = None, **options) -> Fuser:
    """The frozen network and its full-resolution refinement head, loaded once."""
    return prepare_network(refine_head=head_weights(head), **options)


add_method(FusionMethod(
    REFINED,
    "StackMFF V3 network refined at full resolution by a small learned head on its logits "
    "and two focus measures (--blend soft|band as for v3; shipped head, or --head)",
    prepare=prepare_refined, options=OPTIONS | {"head"}, check=check_refined_options,
    selects=selects_when_hard, rank=0))
