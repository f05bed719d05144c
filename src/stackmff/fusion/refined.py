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


class RefinedFuser(StackFuser):
    """A :class:`StackFuser` whose logits pass through a :class:`RefineHead`."""

    name = "v3+"

    def __init__(self, model, head: RefineHead, **options) -> None:
        super().__init__(model, **options)
        self.head = head.eval().to(self.device)

    @torch.inference_mode()
    def logits(self, grey: np.ndarray, means: ImageMeans | None = None) -> torch.Tensor:
        base = super().logits(grey, means).float()
        luma = torch.from_numpy(np.ascontiguousarray(grey, np.float32)).to(base.device)
        return self.head(base, luma)
