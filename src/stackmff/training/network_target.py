"""What the training loop needs to train the network: the model, its batches of synthetic
stacks rendered on the fly, its loss, and its validation on a fixed set of held-out stacks."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

from stackmff.errors import StackError
from stackmff.metrics import psnr
from stackmff.model import StackMFFV3
from stackmff.runtime.optimise import convolution_layout
from stackmff.stack_ops import gather
from stackmff.training.config import TrainConfig
from stackmff.training.dataset import batches, validation_set
from stackmff.training.losses import (
    classification_loss,
    depth_regression_loss,
    selection_blend_loss,
    selection_cost_loss,
)
from stackmff.training.rendered import rendered_folders
from stackmff.weights.checkpoint import load_checkpoint

LOG_FIELDS = ("step", "minutes", "lr", "loss", "val_accuracy", "val_within_one", "val_psnr")


def training_device(choice: str, key: str = "[run] device") -> torch.device:
    """``"cpu"``, ``"cuda"``, or ``"auto"`` (cuda when available); refuses a missing GPU."""
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise StackError(f"{key} = 'cuda', but no CUDA device is available")
    return torch.device(choice)


def mean_psnr(scores: list[float]) -> float:
    """The mean of the finite scores (an exact match scores infinity)."""
    finite = [s for s in scores if math.isfinite(s)]
    return float(np.mean(finite)) if finite else float("inf")


@torch.no_grad()
def validate(model: StackMFFV3, stacks) -> dict[str, float]:
    """Focus-map accuracy (exact, within one layer) and fused PSNR on the fixed set.

    PSNR is measured against the stack's own label gather (the best a selection can do), so
    it reads as "how close to the ideal selection"."""
    model.eval()
    device = next(model.parameters()).device
    exact, near, scores = [], [], []
    for stack, focus_map in stacks:
        logits = model(torch.from_numpy(stack)[None, :, None].to(device)).logits[0]
        predicted = logits.argmax(0).cpu().numpy()
        exact.append(np.mean(predicted == focus_map))
        near.append(np.mean(np.abs(predicted - focus_map) <= 1))
        scores.append(psnr(gather(stack, predicted), gather(stack, focus_map)))
    model.train()
    return {"val_accuracy": float(np.mean(exact)), "val_within_one": float(np.mean(near)),
            "val_psnr": mean_psnr(scores)}


class NetworkTarget:
    """The StackMFF V3 network, trained on synthetic stacks rendered on the fly."""

    log_fields = LOG_FIELDS
    meta: dict = {}  # a network checkpoint's meta holds the run's keys only

    def __init__(self, config: TrainConfig, resumed: bool) -> None:
        """The model, from ``[run] init`` unless the run resumes; on its training device."""
        self.config = config
        self.device = training_device(config.run.device)
        model = StackMFFV3(config.model)
        if config.run.init and not resumed:
            try:
                model.load_state_dict(load_checkpoint(config.run.init)[0].state_dict())
            except StackError as exc:
                raise StackError(f"[run] init: {exc}") from None
        if config.optim.freeze == "encoder":  # the optimizer then skips its weights
            model.focus.encoder.requires_grad_(False)
        self.model = model.to(self.device)  # before the optimizer: its state lives there too
        self.stacks: list = []
        self.loss_fn = _loss_function(config)
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16,
                                       enabled=config.run.bf16)

    @staticmethod
    def read(path) -> tuple[StackMFFV3, dict]:
        return load_checkpoint(path)

    def prepare(self, progress: bool = False) -> None:
        """The memory layout for training, and the fixed validation stacks."""
        self.model = self.model.to(memory_format=convolution_layout(self.device))
        self._train_mode()
        run = self.config.run
        self.stacks = validation_set(self.config.data, run.validation_stacks, run.validation_size)
        if self.config.data.rendered and self.config.data.rendered_share > 0:
            rendered_folders(self.config.data.rendered)  # there, or said before any step

    def _train_mode(self) -> None:
        """Training mode, but a frozen encoder stays as it is: its BatchNorms keep their
        statistics and its stochastic depth is off."""
        self.model.train()
        if self.config.optim.freeze == "encoder":
            self.model.focus.encoder.eval()

    def batches(self, step: int) -> Iterator:
        """The batch stream of a run at ``step`` (a resumed run draws a new stream)."""
        return iter(batches(self.config.data, self.config.run.seed + step))

    def loss(self, batch) -> tuple[torch.Tensor, dict]:
        """The loss of one batch, and what the progress bar shows beside it."""
        stack, focus_map = batch
        stack = stack.to(self.device, non_blocking=True)
        focus_map = focus_map.to(self.device, non_blocking=True)
        with self.autocast:
            output = self.model(stack)
        output = type(output)(output.logits.float())
        if self.loss_fn in (selection_cost_loss, selection_blend_loss):
            return self.loss_fn(output, focus_map, stack), {"N": stack.shape[1]}
        return self.loss_fn(output, focus_map), {"N": stack.shape[1]}

    def validate(self) -> dict[str, float]:
        scores = validate(self.model, self.stacks)
        self._train_mode()
        return scores


def _loss_function(config: TrainConfig):
    if config.model.head == "depth_regression":
        return depth_regression_loss
    return {"selection_cost": selection_cost_loss, "selection_blend": selection_blend_loss,
            "cross_entropy": classification_loss}[config.optim.loss]
