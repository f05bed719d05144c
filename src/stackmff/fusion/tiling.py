"""Overlapping tiles, so memory stays bounded for any image size.

Each tile is a core region plus a margin of context on every side (clipped at the image
border); the network sees core + margin, and only the core is kept. The margin gives the
convolutions and poolings enough context that tiles do not visibly change the result.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TILE = 1024
DEFAULT_MARGIN = 128
MAX_MARGIN = 1024  # far beyond what the network's context needs; bounds the work per tile


@dataclass(frozen=True)
class Tile:
    """``core``: the (y0, y1, x0, x1) region this tile decides. ``window``: the region fed to
    the network (core plus margin, inside the image)."""

    core: tuple[int, int, int, int]
    window: tuple[int, int, int, int]

    def core_in_window(self) -> tuple[slice, slice]:
        y0, y1, x0, x1 = self.core
        wy0, _, wx0, _ = self.window
        return slice(y0 - wy0, y1 - wy0), slice(x0 - wx0, x1 - wx0)


def plan_tiles(height: int, width: int, tile: int | None, margin: int) -> list[Tile]:
    """Split an image into cores of at most ``tile`` pixels a side (``None``: one tile).
    ``tile`` and ``margin`` are values the network's options take (their table in
    :mod:`stackmff.fusion.network_method` checks them where they are given)."""
    if tile is None or (height <= tile and width <= tile):
        return [Tile((0, height, 0, width), (0, height, 0, width))]
    tiles = []
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            window = (max(0, y0 - margin), min(height, y1 + margin),
                      max(0, x0 - margin), min(width, x1 + margin))
            tiles.append(Tile((y0, y1, x0, x1), window))
    return tiles
