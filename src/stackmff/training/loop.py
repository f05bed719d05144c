"""The training loop: AdamW with warm-up and step or cosine decay, periodic validation, checkpoints
every few minutes, resume, and a time budget. Never imported by inference code.

A run lives in its out folder (``last.pt``, ``log.csv``). Nothing is written there before the
first completed step, so a run that fails or is stopped early never costs an earlier one.
"""

from __future__ import annotations

import csv
import math
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

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
from stackmff.weights.checkpoint import load_checkpoint, save_checkpoint

LOG_FIELDS = ["step", "minutes", "lr", "loss", "val_accuracy", "val_within_one", "val_psnr"]


def learning_rate(config: TrainConfig, step: int, minutes: float = 0.0) -> float:
    """Warm-up, then step decay or a cosine that ends with the run's budget: ``max_steps``
    or, when set, ``max_minutes``, whichever runs out first."""
    optim = config.optim
    warm = min(1.0, (step + 1) / max(1, optim.warmup_steps))
    if optim.schedule == "cosine":
        progress = step / max(1, config.run.max_steps)
        if config.run.max_minutes:
            progress = max(progress, minutes / config.run.max_minutes)
        progress = min(1.0, progress)
        cosine = optim.min_lr + (optim.lr - optim.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
        return warm * cosine
    return optim.lr * warm * optim.decay ** (step // optim.decay_steps)


def training_device(choice: str) -> torch.device:
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise StackError("[run] device = 'cuda', but no CUDA device is available")
    return torch.device(choice)


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
    finite = [s for s in scores if math.isfinite(s)]
    return {"val_accuracy": float(np.mean(exact)), "val_within_one": float(np.mean(near)),
            "val_psnr": float(np.mean(finite)) if finite else float("inf")}


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by SIGINT or SIGTERM after saving every completed step.

    Attributes:
        signum: the signal that stopped it (SIGINT for a plain KeyboardInterrupt).
        checkpoint: the run's ``last.pt``, or None when the run has none yet.
        step: the step the checkpoint holds.
    """

    def __init__(self, signum: int, checkpoint: Path | None, step: int) -> None:
        super().__init__(f"training stopped by {signal.Signals(signum).name} at step {step}")
        self.signum, self.checkpoint, self.step = signum, checkpoint, step


def check_out_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to start where a run would be lost: an existing run is continued (``resume``),
    replaced (``overwrite``) or left alone."""
    if resume and overwrite:
        raise StackError(f"--resume continues the run in {out} and --overwrite replaces it: "
                         f"choose one, not both")
    if out.exists() and not out.is_dir():
        raise StackError(f"[run] out = {str(out)!r} is a file, not a folder")
    has_checkpoint, has_log = (out / "last.pt").is_file(), (out / "log.csv").is_file()
    if overwrite or not (has_checkpoint or has_log):
        return
    if not resume:
        raise StackError(f"{out} already holds a training run (last.pt or log.csv): pass "
                         f"--resume to continue it or --overwrite to replace it")
    if not has_checkpoint:
        raise StackError(f"{out} has a log.csv but no last.pt to resume from: pass "
                         f"--overwrite to start the run again")


def train(config: TrainConfig, resume: bool = False, progress: bool | None = None,
          overwrite: bool = False) -> Path:
    """Train the network; a run lives in ``config.run.out``.

    Args:
        config: the whole training setup; checked before anything is created.
        resume: continue the run in the out folder from its ``last.pt``.
        progress: show a progress bar (default: when stderr is a terminal).
        overwrite: replace the run in the out folder; the old one is replaced only once the
            new run has completed a step.

    Returns:
        The path of the last checkpoint (``<out>/last.pt``).

    Raises:
        StackError: a bad config, or an out folder holding a run without resume/overwrite.
        TrainingInterrupted: SIGINT or SIGTERM; the checkpoint keeps every completed step.
    """
    config = config.checked()
    out = Path(config.run.out)
    last, log_path = out / "last.pt", out / "log.csv"
    check_out_folder(out, resume, overwrite)
    resumed = resume and last.is_file()
    device = training_device(config.run.device)
    torch.manual_seed(config.run.seed)
    torch.set_flush_denormal(True)
    model = StackMFFV3(config.model)
    if config.run.init and not resumed:
        try:
            model.load_state_dict(load_checkpoint(config.run.init)[0].state_dict())
        except StackError as exc:
            raise StackError(f"[run] init: {exc}") from None
    model = model.to(device)  # before the optimizer, so that its state lives there too
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.optim.lr,
                                  weight_decay=config.optim.weight_decay)
    step, minutes_before = 0, 0.0
    if resumed:
        restored, payload = load_checkpoint(last)
        model.load_state_dict(restored.state_dict())
        if "optimizer" in payload:  # a weights-only checkpoint restarts the optimizer
            optimiser.load_state_dict(payload["optimizer"])
        step, minutes_before = int(payload["meta"]["step"]), float(payload["meta"]["minutes"])
    first_step = step
    model = model.train().to(memory_format=convolution_layout(device))
    if config.model.head == "depth_regression":
        loss_fn = depth_regression_loss
    elif config.optim.loss == "selection_cost":
        loss_fn = selection_cost_loss
    elif config.optim.loss == "selection_blend":
        loss_fn = selection_blend_loss
    else:
        loss_fn = classification_loss
    stacks = validation_set(config.data, config.run.validation_stacks, config.run.validation_size)
    log, writer = None, None
    started = time.monotonic()
    last_save = started

    def minutes() -> float:
        return minutes_before + (time.monotonic() - started) / 60

    def save() -> None:
        meta = {"step": step, "minutes": minutes(), "train_config": config.to_dict(),
                "torch": str(torch.__version__)}
        save_checkpoint(last, model, meta=meta, extra={"optimizer": optimiser.state_dict()})

    def record(row: dict) -> None:
        """Log a completed step; the first one opens the log (a new run replaces an old one
        only now) and, in a new run, writes the first checkpoint beside it."""
        nonlocal log, writer
        first = log is None
        if first:
            out.mkdir(parents=True, exist_ok=True)
            append = resumed and log_path.is_file()
            log = open(log_path, "a" if append else "w", newline="")
            writer = csv.DictWriter(log, LOG_FIELDS)
            if not append:
                writer.writeheader()
        writer.writerow(row)
        log.flush()
        if first and not resumed:
            save()  # the log and the checkpoint in the folder now belong to the same run

    signals: list[int] = []

    def stop(signum, frame):  # a polite kill still writes the last checkpoint
        signals.append(signum)
        # a second SIGTERM ends the process at once (the checkpoint write is atomic)
        signal.signal(signum, signal.SIG_DFL if signum == signal.SIGTERM
                      else signal.default_int_handler)
        raise KeyboardInterrupt

    previous = {}
    if threading.current_thread() is threading.main_thread():  # handlers live there only
        previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=config.run.max_steps, initial=step, disable=not show, desc="train")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.run.bf16)

    def out_of_budget() -> bool:
        return step >= config.run.max_steps or (config.run.max_minutes is not None
                                                 and minutes() >= config.run.max_minutes)

    interrupted = False
    try:
        stream = iter(batches(config.data, config.run.seed + step))
        while not out_of_budget():
            stack, focus_map = next(stream)
            stack = stack.to(device, non_blocking=True)
            focus_map = focus_map.to(device, non_blocking=True)
            lr = learning_rate(config, step, minutes())
            for group in optimiser.param_groups:
                group["lr"] = lr
            with autocast:
                output = model(stack)
            output = type(output)(output.logits.float())
            if loss_fn in (selection_cost_loss, selection_blend_loss):
                loss = loss_fn(output, focus_map, stack)
            else:
                loss = loss_fn(output, focus_map)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", N=stack.shape[1])
            row = {"step": step, "minutes": f"{minutes():.2f}", "lr": f"{lr:.3g}",
                   "loss": f"{loss.item():.4f}"}
            if step % config.run.validate_every == 0 or out_of_budget():
                row.update({k: f"{v:.4f}" for k, v in validate(model, stacks).items()})
            record(row)
            if time.monotonic() - last_save >= config.run.checkpoint_minutes * 60:
                save()
                last_save = time.monotonic()
    except KeyboardInterrupt:
        interrupted = True  # stop here; the checkpoint below keeps every finished step
    finally:
        try:
            if step > first_step:  # never a checkpoint without a new step
                save()
        finally:
            if log is not None:
                log.close()
            bar.close()
            for signum, handler in previous.items():
                signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    if interrupted:
        kept = step > first_step or resumed
        raise TrainingInterrupted(signals[0] if signals else signal.SIGINT,
                                  last if kept else None, step)
    return last
