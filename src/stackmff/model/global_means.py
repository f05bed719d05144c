"""The network's global averages, with a hook through which tiled inference takes them over.

The per-layer network has global branches: each pyramid-FC block's global average and the
PSP module's 1x1 bin. Run on one tile, they average over that tile, not over the image; tiled
inference therefore sets a hook (:mod:`stackmff.fusion.image_means`) that records them or
replays the whole image's. Which hook is active is a context variable, so worker threads that
run different layers each see their own (see :mod:`stackmff.runtime.parallel`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F

Hook = Callable[[torch.Tensor], torch.Tensor]
_active: ContextVar[Hook | None] = ContextVar("global_means", default=None)


def global_average(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W] -> [B, C, 1, 1]``: the mean over the map, or what the active hook makes
    of it."""
    hook = _active.get()
    return F.adaptive_avg_pool2d(x, 1) if hook is None else hook(x)


@contextmanager
def using(hook: Hook) -> Iterator[None]:
    """Make ``hook`` answer the global averages run in this thread, for the block."""
    token = _active.set(hook)
    try:
        yield
    finally:
        _active.reset(token)
