"""Pictures of per-pixel decisions: the focus map with a colour bar, the confidence map."""

from __future__ import annotations

import cv2
import numpy as np


def focus_map_picture(focus_map: np.ndarray, n_layers: int) -> np.ndarray:
    """Colour picture (uint8 RGB) of a focus map with a labelled colour bar on the right.

    Layer 0 is dark blue, the last layer dark red (the "turbo" colour map); the bar names
    the layer index of each colour, 0-based like the raw index file.
    """
    if focus_map.ndim != 2:
        raise ValueError(f"focus map must be 2-D, got shape {focus_map.shape}")
    levels = _layer_colours(n_layers)
    picture = levels[np.clip(focus_map, 0, n_layers - 1)]
    return np.concatenate([picture, _colour_bar(focus_map.shape[0], levels)], axis=1)


def confidence_picture(confidence: np.ndarray) -> np.ndarray:
    """uint16 grey picture of a confidence map in [0, 1] (white = certain)."""
    return np.clip(np.rint(confidence * 65535), 0, 65535).astype(np.uint16)


def _layer_colours(n_layers: int) -> np.ndarray:
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
