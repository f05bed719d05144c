"""napari sample data: the bundled circuit-board stack, and a synthetic stack.

``examples/pcb`` (MIT, see ``examples/pcb-NOTICE.md``) lives in the repository, not in the
package: a source checkout or an editable install opens it, and an installed wheel, which
does not carry it, opens the synthetic stack instead (and says so in the layer's name).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from stackmff.io import Stack
from stackmff.io.paths import is_image_path
from stackmff.napari.reader import LayerData, read_stack, stack_layer_data

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "pcb"


def pcb_stack() -> list[LayerData]:
    """The 7-layer circuit-board stack of ``examples/pcb`` (synthetic where it is absent)."""
    if EXAMPLE.is_dir() and sum(is_image_path(p) for p in EXAMPLE.iterdir()) >= 2:
        data, kwargs, kind = read_stack(EXAMPLE)[0]
        return [(data, {**kwargs, "name": "pcb"}, kind)]
    data, kwargs, kind = synthetic_stack()[0]
    return [(data, {**kwargs, "name": "synthetic stack (examples/pcb is not installed)"}, kind)]


def synthetic_stack(n_layers: int = 5, height: int = 192, width: int = 256,
                    seed: int = 0) -> list[LayerData]:
    """A colour stack whose focus moves in diagonal bands: layer ``k`` is sharp in band
    ``k`` and blurred elsewhere, more the farther its band is."""
    rng = np.random.default_rng(seed)
    fine = cv2.GaussianBlur(rng.random((height, width, 3), dtype=np.float32), (0, 0), 0.8)
    coarse = cv2.resize(rng.random((height // 16, width // 16, 3), dtype=np.float32),
                        (width, height), interpolation=cv2.INTER_NEAREST)
    sharp = 0.05 + 0.9 * (0.5 * (fine - fine.min()) / np.ptp(fine) + 0.5 * coarse)
    y, x = np.mgrid[:height, :width]
    band = ((x + y) * n_layers) // (height + width)
    blurred = [sharp] + [cv2.GaussianBlur(sharp, (0, 0), 1.5 * d) for d in range(1, n_layers)]
    layers = np.empty((n_layers, height, width, 3), np.float32)
    for k in range(n_layers):
        distance = np.abs(band - k)
        for d in range(n_layers):
            layers[k][distance == d] = blurred[d][distance == d]
    return [stack_layer_data(Stack(layers, np.dtype(np.uint8)), "synthetic stack")]
