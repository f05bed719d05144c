"""The ``v3+`` fuser: the frozen V3 network's logits refined at full resolution by the
head of :mod:`stackmff.model.refine`, then blended or gathered exactly as ``v3`` does.

The head runs on each tile's window (its reach, a few pixels, stays inside the margin), and on
every scale of a multi-scale blend, so every blend mode, the focus map and the confidence
are those of ``v3`` with the refined logits in place of the network's.
"""

from __future__ import annotations

import numpy as np
import torch

from stackmff.fusion.image_means import ImageMeans
from stackmff.fusion.predictor import StackFuser
from stackmff.model.refine import RefineHead

HEAD_BYTES = 240  # the head's float32 maps per layer and pixel at their peak (about 60)
HEAD_STRIP_BYTES = 2**28  # what one strip of the head may hold
HEAD_MIN_ROWS = 32


class RefinedFuser(StackFuser):
    """A :class:`StackFuser` whose logits pass through a :class:`RefineHead`."""

    name = "v3+"

    def __init__(self, model, head: RefineHead, **options) -> None:
        super().__init__(model, **options)
        self.head = head.eval().to(self.device)

    @torch.inference_mode()
    def logits(self, grey: np.ndarray, means: ImageMeans | None = None) -> torch.Tensor:
        """The network's logits refined strip by strip of rows, each with the head's reach
        of context around it, so that the head's per-layer maps (some 60 channels per
        layer) are never whole-image."""
        base = super().logits(grey, means).float()
        luma = torch.from_numpy(np.ascontiguousarray(grey, np.float32)).to(base.device)
        n, height, width = base.shape
        reach = self.head.reach()
        rows = height if self.device == "cuda" else max(
            HEAD_MIN_ROWS, HEAD_STRIP_BYTES // (n * width * HEAD_BYTES) - 2 * reach)
        refined = torch.empty_like(base)
        for start in range(0, height, rows):
            stop = min(start + rows, height)
            top, bottom = max(start - reach, 0), min(stop + reach, height)
            part = self.head(base[:, top:bottom], luma[:, top:bottom])
            refined[:, start:stop] = part[:, start - top:stop - top]
        return refined
