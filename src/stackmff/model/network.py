"""The StackMFF V3 network: focus estimation per layer, cross-layer attention, one logit per
layer and pixel (the maximum over the C0 channels; no learned head).

The forward pass always returns :class:`StackOutput`, in training and in evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from stackmff.model.attention import CrossLayerAttention, MapFunction, serial
from stackmff.model.backbone import FocusEstimator
from stackmff.model.config import ModelConfig


@dataclass
class StackOutput:
    """``logits``: ``[B, N, H, W]``, one score per layer and pixel; softmax over N gives the
    per-pixel probability of each layer being the sharpest."""

    logits: torch.Tensor

    def probabilities(self) -> torch.Tensor:
        return self.logits.softmax(dim=1)

    def focus_map(self) -> torch.Tensor:
        """``[B, H, W]`` index of the winning layer (classification head, V3)."""
        return self.logits.argmax(dim=1)

    def depth_focus_map(self) -> torch.Tensor:
        """``[B, H, W]`` layer nearest to the expected depth (regression head, V3*)."""
        n = self.logits.shape[1]
        return torch.round(self.expected_depth() * (n - 1)).long()

    def confidence(self) -> torch.Tensor:
        """``[B, H, W]`` softmax probability of the winning layer."""
        return self.probabilities().amax(dim=1)

    def expected_depth(self) -> torch.Tensor:
        """``[B, H, W]`` softmax expectation of the normalised layer position in [0, 1] (V3*)."""
        n = self.logits.shape[1]
        positions = torch.linspace(0, 1, n, device=self.logits.device, dtype=self.logits.dtype)
        return torch.einsum("bnhw,n->bhw", self.probabilities(), positions)


def _check_stack(stack: torch.Tensor) -> torch.Tensor:
    if stack.ndim != 5 or stack.shape[2] != 1:
        raise ValueError(f"expected a stack [B, N, 1, H, W], got {tuple(stack.shape)}")
    if stack.shape[1] < 2:
        raise ValueError(f"a stack needs at least 2 layers, got {stack.shape[1]}")
    return stack


class StackMFFV3(nn.Module):
    """Stack ``[B, N, 1, H, W]`` luma in [0, 1] -> :class:`StackOutput`. Any N >= 2."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        self.focus = FocusEstimator(self.config)
        self.attention = CrossLayerAttention(self.config)

    def forward(self, stack: torch.Tensor) -> StackOutput:
        return StackOutput(self.reduce(self.attention(self.estimate(stack))))

    def estimate(self, stack: torch.Tensor) -> torch.Tensor:
        """Stage 1 on every layer: ``[B, N, 1, H, W] -> [B, N, C0, H, W]``."""
        b, n, _, h, w = _check_stack(stack).shape
        return self.focus(stack.reshape(b * n, 1, h, w)).reshape(b, n, -1, h, w)

    def estimate_quarter(self, stack: torch.Tensor, layers_per_batch: int = 1,
                         map_fn: MapFunction | None = None,
                         group_context: Callable[[int], AbstractContextManager] | None = None,
                         dtype: torch.dtype = torch.float32,
                         memory_format: torch.memory_format = torch.contiguous_format
                         ) -> torch.Tensor:
        """Stage 1 up to its 1/4-resolution maps, ``[B, N, 1, H, W] -> [B * N, C0, H/4, W/4]``;
        ``focus.decoder.full_resolution`` finishes any rows of them, so the rest can run
        strip by strip.

        The layers go through in groups of ``layers_per_batch``, into one tensor filled in
        place; ``map_fn(function, items)`` may run the groups in parallel, and
        ``group_context(start)`` is entered around the group of layers from ``start`` on (in
        the thread that runs it). ``dtype`` and ``memory_format``: those the network makes
        the maps in, to keep them exactly as they are."""
        b, n, _, h, w = _check_stack(stack).shape
        flat = stack.reshape(b * n, 1, h, w)
        out = torch.empty((b * n, self.config.decoder_width, -(-h // 4), -(-w // 4)),
                          device=stack.device, dtype=dtype).contiguous(memory_format=memory_format)

        def run(start: int) -> None:
            with (group_context or nullcontext)(start):  # nullcontext(start) does nothing
                out[start:start + layers_per_batch] = self.focus.quarter(
                    flat[start:start + layers_per_batch])

        (map_fn or serial)(run, list(range(0, b * n, layers_per_batch)))
        return out

    @staticmethod
    def reduce(volume: torch.Tensor) -> torch.Tensor:
        """Stage 3: one logit per layer and pixel, the maximum over the C0 channels."""
        return volume.amax(dim=2)
