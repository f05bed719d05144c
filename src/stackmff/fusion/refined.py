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
from stackmff.runtime.parallel import thread_map
from stackmff.runtime.refine_inference import FEATURE_BYTES, HeadInference


class RefinedFuser(StackFuser):
    """A :class:`StackFuser` whose logits pass through a :class:`RefineHead`."""

    name = "v3+"
    after_bytes = FEATURE_BYTES  # the head's input maps, kept for the window

    def __init__(self, model, head: RefineHead, **options) -> None:
        super().__init__(model, **options)
        self.head = HeadInference(head.eval().to(self.device), self.device)

    @torch.inference_mode()
    def logits(self, grey: np.ndarray, means: ImageMeans | None = None) -> torch.Tensor:
        """The network's logits refined by the head (strip by strip of rows on the worker
        threads, so that its per-layer maps, some 60 channels per layer, are never
        whole-image)."""
        base = super().logits(grey, means).float()
        luma = torch.from_numpy(np.ascontiguousarray(grey, np.float32)).to(base.device)
        rows = base.shape[1] if self.device == "cuda" else None  # few large launches
        with thread_map(self.workers) as parallel:
            return self.head(base, luma, parallel, self.workers, rows)
