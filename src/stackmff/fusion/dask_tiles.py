"""One image too large for one machine: fuse a Dask array block by block, each block with a
margin of context around it.

The stack stays a Dask array ``(L, Y, X[, C])``; every Y/X block is fused from its window
(block plus ``margin``, clipped at the image border) and keeps only its own pixels, the
network's tiling spread over Dask's workers. For the network this is exactly its single-process
tiling with blocks as tiles and each tile's own global averages (``global_means=False``).
"""

from __future__ import annotations

import numpy as np

from stackmff.methods import Fuser
from stackmff.result import FusionResult
from stackmff.stack_ops import check_stack_shape, gather


def _spans(chunks: tuple[int, ...]) -> list[tuple[int, int]]:
    edges = np.concatenate([[0], np.cumsum(chunks)]).astype(int)
    return list(zip(edges[:-1], edges[1:]))


def _decide(window: np.ndarray, fuser: Fuser, core: tuple[int, int, int, int],
            with_fused: bool = False) -> np.ndarray:
    """Focus map and confidence of a window's core, as one ``(2, h, w)`` float32 array;
    ``with_fused``: the fused core's channels follow (blends that are not a gather)."""
    result = fuser(np.asarray(window, np.float32))
    y0, y1, x0, x1 = core
    confidence = (np.full(result.fused.shape[:2], np.nan, np.float32)
                  if result.confidence is None else result.confidence)
    planes = [result.focus_map[y0:y1, x0:x1].astype(np.float32), confidence[y0:y1, x0:x1]]
    if with_fused:
        fused = result.fused[y0:y1, x0:x1]
        planes += list(np.moveaxis(fused, -1, 0)) if fused.ndim == 3 else [fused]
    return np.stack(planes)


def _gather(layers: np.ndarray, focus_map: np.ndarray) -> np.ndarray:
    return gather(np.asarray(layers, np.float32), focus_map)


def _scheduler() -> dict:
    """A Dask distributed client if one is active, else this thread (the fuser has threads of
    its own)."""
    try:
        from distributed import get_client

        get_client()
        return {}
    except (ImportError, ValueError):
        return {"scheduler": "synchronous"}


def fuse_dask_array(array, fuser: Fuser, margin: int, method: str,
                    copies_pixels: bool) -> FusionResult:
    """Fuse a Dask array ``(L, Y, X[, 3])`` of float layers in [0, 1], block by block.

    ``copies_pixels``: the registry's answer for the fuser's method and options
    (:meth:`stackmff.methods.FusionMethod.copies_pixels`); where it is no, the blocks' fused
    pixels come back with their decisions instead of being gathered by the focus map."""
    import dask
    import dask.array as da

    check_stack_shape(array.shape)
    array = array.rechunk({0: -1, **({3: -1} if array.ndim == 4 else {})})
    height, width = array.shape[1:3]
    blended = not copies_pixels
    planes = 2 + (array.shape[3] if array.ndim == 4 else 1) if blended else 2
    rows = []
    for y0, y1 in _spans(array.chunks[1]):
        row = []
        for x0, x1 in _spans(array.chunks[2]):
            wy0, wy1 = max(0, y0 - margin), min(height, y1 + margin)
            wx0, wx1 = max(0, x0 - margin), min(width, x1 + margin)
            part = dask.delayed(_decide)(array[:, wy0:wy1, wx0:wx1], fuser,
                                         (y0 - wy0, y1 - wy0, x0 - wx0, x1 - wx0), blended)
            row.append(da.from_delayed(part, shape=(planes, y1 - y0, x1 - x0),
                                       dtype=np.float32))
        rows.append(row)
    decisions = da.block(rows)
    (decided,) = dask.compute(decisions, **_scheduler())
    focus_map = decided[0].astype(np.uint16)
    confidence = None if np.isnan(decided[1]).all() else decided[1]
    if blended:
        fused = np.moveaxis(decided[2:], 0, -1) if array.ndim == 4 else decided[2]
        return FusionResult(fused=np.ascontiguousarray(fused), focus_map=focus_map,
                            confidence=confidence, method=method)
    colour = array.shape[3:]
    fused = da.concatenate([da.concatenate([da.from_delayed(
        dask.delayed(_gather)(array[:, y0:y1, x0:x1], focus_map[y0:y1, x0:x1]),
        shape=(y1 - y0, x1 - x0, *colour), dtype=np.float32)
        for x0, x1 in _spans(array.chunks[2])], axis=1) for y0, y1 in _spans(array.chunks[1])],
        axis=0)
    (fused,) = dask.compute(fused, **_scheduler())
    return FusionResult(fused=fused, focus_map=focus_map, confidence=confidence, method=method)
