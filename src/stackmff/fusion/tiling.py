"""Overlapping tiles, so memory stays bounded for any image size.

Each tile is a core region plus a margin of context on every side (clipped at the image
border); the network sees core + margin, and only the core is kept. The margin gives the
convolutions and poolings enough context that tiles do not visibly change the result.
Tiles cost work (every margin is computed twice, and several tiles need a first pass for the
image-wide means), so the automatic plan takes the fewest window pixels whose windows fit a
memory budget: one tile when the image fits, else the grid of cores, of any shape, that
wastes least.
"""

from __future__ import annotations

from dataclasses import dataclass

ALIGN = 32  # the network's total stride: cores and windows of this many pixels pad least
SMALLEST_TILE = 128

DEFAULT_MARGIN = 64  # as good as 128 px against one pass, measured (benchmarks/tiling.py)
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
    return _grid(height, width, tile, tile, margin)


def plan_budget_tiles(height: int, width: int, window_pixels: int, margin: int,
                      most: int = 64) -> list[Tile]:
    """The grid of tiles whose windows each hold at most ``window_pixels`` pixels (cores a
    multiple of 32 but the last) with the fewest window pixels in all; the whole image as
    one tile when it fits. At most ``most`` tiles a side; where no grid fits (margins
    wider than the budget), the smallest tiles, 128 px cores."""
    if height * width <= window_pixels:
        return plan_tiles(height, width, None, margin)
    best: tuple[int, int, list[Tile]] | None = None
    for rows in range(1, min(most, -(-height // ALIGN)) + 1):
        core_h = _aligned(-(-height // rows))
        for cols in range(1, min(most, -(-width // ALIGN)) + 1):
            tiles = _grid(height, width, core_h, _aligned(-(-width // cols)), margin)
            sizes = [(w[1] - w[0]) * (w[3] - w[2]) for w in (t.window for t in tiles)]
            if max(sizes) > window_pixels:
                continue
            key = (sum(sizes), len(tiles))
            if best is None or key < best[:2]:
                best = (*key, tiles)
            break  # more columns only add margins
    return plan_tiles(height, width, SMALLEST_TILE, margin) if best is None else best[2]


def _aligned(pixels: int) -> int:
    return -(-pixels // ALIGN) * ALIGN


def _grid(height: int, width: int, core_h: int, core_w: int, margin: int) -> list[Tile]:
    tiles = []
    for y0 in range(0, height, core_h):
        for x0 in range(0, width, core_w):
            y1, x1 = min(y0 + core_h, height), min(x0 + core_w, width)
            window = (max(0, y0 - margin), min(height, y1 + margin),
                      max(0, x0 - margin), min(width, x1 + margin))
            tiles.append(Tile((y0, y1, x0, x1), window))
    return tiles
