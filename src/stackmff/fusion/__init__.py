"""Fusion with the network: the predictor (model loaded once) and tiling.

``StackFuser`` is imported on first use, so that the classical methods never load torch.
"""

from stackmff.fusion.tiling import Tile, plan_tiles

__all__ = ["StackFuser", "Tile", "plan_tiles"]


def __getattr__(name: str):
    if name == "StackFuser":
        from stackmff.fusion.predictor import StackFuser

        return StackFuser
    raise AttributeError(f"module 'stackmff.fusion' has no attribute {name!r}")
