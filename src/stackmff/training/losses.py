"""Training losses on the network's :class:`~stackmff.model.StackOutput`: V3's per-pixel
classification, its cost-weighted variant (alone, or with a loss on the probability-weighted
blend of the layers), V3*'s depth regression, and the v3+ head's loss on its refined logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stackmff.model import StackOutput


def classification_loss(output: StackOutput, focus_map: torch.Tensor) -> torch.Tensor:
    """V3 training loss: per-pixel cross-entropy against the 0-based true layer index."""
    return F.cross_entropy(output.logits, focus_map.long())


def selection_cost_loss(output: StackOutput, focus_map: torch.Tensor,
                        stack: torch.Tensor) -> torch.Tensor:
    """Cross-entropy weighted by what a wrong choice costs, plus the expected cost.

    The cost of picking layer k at a pixel is ``|layer_k - true layer|`` there. On flat
    regions every layer is as good as the label, so their cross-entropy weighs little; where
    layers differ, a choice one layer off costs less than a far one. Both terms are scaled
    by the batch's mean cost, so the loss does not depend on image contrast.
    """
    layers = stack[:, :, 0].to(output.logits.dtype)                    # [B, N, H, W]
    target = focus_map.long()
    ideal = layers.gather(1, target[:, None])
    cost = (layers - ideal).abs()
    scale = cost.mean().clamp_min(1e-6)
    weight = cost.mean(dim=1) / scale + 0.1                            # [B, H, W]
    cross_entropy = F.cross_entropy(output.logits, target, reduction="none")
    weighted = (weight * cross_entropy).sum() / weight.sum()
    expected_cost = (output.logits.softmax(dim=1) * cost).sum(dim=1).mean() / scale
    return weighted + expected_cost


def selection_blend_loss(output: StackOutput, focus_map: torch.Tensor,
                         stack: torch.Tensor) -> torch.Tensor:
    """:func:`selection_cost_loss` plus the error of the soft blend that ``--blend soft``
    makes (the layers weighted by the predicted probabilities) against the true layer's
    image, scaled like the selection cost: trains for the image that blend serves."""
    layers = stack[:, :, 0].to(output.logits.dtype)                    # [B, N, H, W]
    ideal = layers.gather(1, focus_map.long()[:, None])[:, 0]
    scale = (layers - ideal[:, None]).abs().mean().clamp_min(1e-6)
    blended = (output.logits.softmax(dim=1) * layers).sum(dim=1)
    return selection_cost_loss(output, focus_map, stack) + (blended - ideal).abs().mean() / scale


def depth_regression_loss(output: StackOutput, focus_map: torch.Tensor) -> torch.Tensor:
    """V3* training loss: MSE between the expected normalised depth and the true layer's
    normalised position (for ordered stacks)."""
    n = output.logits.shape[1]
    target = focus_map.to(output.logits.dtype) / max(n - 1, 1)
    return F.mse_loss(output.expected_depth(), target)


def head_loss(logits: torch.Tensor, grey: torch.Tensor, label: torch.Tensor,
              truth: torch.Tensor, psnr_weight: float = 0.0) -> torch.Tensor:
    """The v3+ head's loss on one stack's refined logits ``[N, H, W]``: the selection blend
    loss, plus the soft blend's error against the sharp image ``truth`` scaled alike (PSNR
    is measured against the sharp image), and with ``psnr_weight`` the log of the blend's
    squared error (the mean PSNR itself, up to constants). ``grey`` is the layers' luma
    ``[N, H, W]``, ``label`` the true layer ``[H, W]``."""
    label = label.long()[None]
    ideal = grey.gather(0, label)[0]
    scale = (grey - ideal).abs().mean().clamp_min(1e-6)
    blended = (logits.softmax(0) * grey).sum(0)
    loss = (selection_blend_loss(StackOutput(logits[None]), label, grey[None, :, None])
            + (blended - truth).abs().mean() / scale)
    if psnr_weight:
        loss = loss + psnr_weight * torch.log((blended - truth).pow(2).mean() + 1e-8)
    return loss
