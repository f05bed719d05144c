"""Pictures of per-pixel decisions (the focus map with a colour bar, the confidence map), and
reading the raw index map and the confidence back, e.g. after a user edited them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from stackmff.errors import StackError
from stackmff.io.image import read_pages
from stackmff.io.pixels import to_float


def focus_map_picture(focus_map: np.ndarray, n_layers: int) -> np.ndarray:
    """Colour picture (uint8 RGB) of a focus map with a labelled colour bar on the right.

    Layer 0 is dark blue, the last layer dark red (the "turbo" colour map); the bar names
    the layer index of each colour, 0-based like the raw index file.
    """
    if focus_map.ndim != 2:
        raise ValueError(f"focus map must be 2-D, got shape {focus_map.shape}")
    levels = layer_colours(n_layers)
    picture = levels[np.clip(focus_map, 0, n_layers - 1)]
    return np.concatenate([picture, _colour_bar(focus_map.shape[0], levels)], axis=1)


def confidence_picture(confidence: np.ndarray) -> np.ndarray:
    """uint16 grey picture of a confidence map in [0, 1] (white = certain)."""
    return np.clip(np.rint(confidence * 65535), 0, 65535).astype(np.uint16)


def layer_colours(n_layers: int) -> np.ndarray:
    """One RGB colour per layer (turbo, dark blue to dark red): the focus-map pictures' and the
    napari Labels layer's."""
    ramp = np.linspace(0, 255, max(n_layers, 2)).round().astype(np.uint8)[:n_layers]
    bgr = cv2.applyColorMap(ramp[:, None], cv2.COLORMAP_TURBO)[:, 0]
    return bgr[:, ::-1].copy()


def _colour_bar(height: int, levels: np.ndarray) -> np.ndarray:
    n = len(levels)
    scale = max(height / 400.0, 0.35)
    bar_w, label_w = int(24 * scale) + 4, int(40 * scale) + 8
    bar = np.full((height, bar_w + label_w + int(8 * scale), 3), 255, np.uint8)
    rows = np.minimum((np.arange(height) * n) // height, n - 1)
    x0 = int(8 * scale)
    bar[:, x0:x0 + bar_w] = levels[rows][:, None]
    step = max(1, int(np.ceil(n / max(1, height // int(22 * scale + 6)))))
    for k in range(0, n, step):
        y = int((k + 0.5) * height / n)
        cv2.putText(bar, str(k), (x0 + bar_w + 4, y + int(5 * scale)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale, (0, 0, 0), max(1, int(scale)),
                    cv2.LINE_AA)
    return bar


def read_index_map(path: str | Path, indices_file: str = "raw indices") -> np.ndarray:
    """Read a raw index map: one grey page of integers (an editor's RGB copy with three equal
    channels is accepted too).

    Args:
        indices_file: the name of the raw indices beside a focus-map picture, for the hint
            when ``path`` is the picture.

    Raises:
        StackError: unreadable, several pages, or a colour picture (the focus-map picture
            with its colour bar instead of the raw indices).
    """
    pages = read_pages(path)
    if len(pages) != 1:
        raise StackError(f"{path} holds {len(pages)} pages; an index map is one image")
    page = pages[0]
    if page.ndim == 3:
        if not (np.array_equal(page[..., 0], page[..., 1])
                and np.array_equal(page[..., 0], page[..., 2])):
            raise StackError(f"{path} is a colour picture, not raw layer indices: use the "
                             f"{indices_file} that 'stackmff fuse --focus-map' writes "
                             "beside it")
        page = page[..., 0]
    return page


def read_confidence_picture(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    pages = read_pages(path)
    page = pages[0]
    if len(pages) != 1 or page.ndim != 2:
        raise StackError(f"{path} is not a grey confidence picture (one page, one channel)")
    if page.shape != tuple(size):
        raise StackError(f"{path} is {page.shape[1]}x{page.shape[0]} but the stack's layers "
                         f"are {size[1]}x{size[0]}")
    return to_float(page)
