"""Fusion with the network: the predictor (model loaded once) and tiling."""

from stackmff.fusion.predictor import StackFuser
from stackmff.fusion.tiling import Tile, plan_tiles

__all__ = ["StackFuser", "Tile", "plan_tiles"]
