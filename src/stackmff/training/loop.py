"""The training loop of both targets, the network and the v3+ head: AdamW with warm-up and
step or cosine decay, periodic validation, checkpoints every few minutes, resume, a time
budget, and SIGINT/SIGTERM handling. Never imported by inference code.

What differs between the targets (model, batches, loss, validation) lives in
:mod:`.network_target` and :mod:`.head_target`. A run lives in its out folder (``last.pt``,
``log.csv``). Nothing is written there before the first completed step, so a run that fails
or is stopped early never costs an earlier one.
"""

from __future__ import annotations

import contextlib
import csv
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import torch
from tqdm import tqdm

from stackmff.errors import StackError
from stackmff.training.config import TrainConfig
from stackmff.training.head_config import HeadTrainConfig
from stackmff.training.head_target import HeadTarget
from stackmff.training.network_target import NetworkTarget
from stackmff.weights.checkpoint import save_checkpoint

AnyConfig = TrainConfig | HeadTrainConfig


def learning_rate(config: AnyConfig, step: int, minutes: float = 0.0) -> float:
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


@dataclass
class Run:
    """One run's state, handed between the loop's setup, step, validate and save."""

    config: AnyConfig
    target: NetworkTarget | HeadTarget
    out: Path
    resumed: bool
    optimiser: torch.optim.Optimizer
    step: int = 0
    first_step: int = 0
    minutes_before: float = 0.0
    started: float = field(default_factory=time.monotonic)
    last_save: float = field(default_factory=time.monotonic)
    log: IO | None = None
    writer: csv.DictWriter | None = None

    @property
    def last(self) -> Path:
        return self.out / "last.pt"

    def minutes(self) -> float:
        return self.minutes_before + (time.monotonic() - self.started) / 60

    def out_of_budget(self) -> bool:
        run = self.config.run
        return self.step >= run.max_steps or (run.max_minutes is not None
                                              and self.minutes() >= run.max_minutes)


def setup(config: AnyConfig, resume: bool, overwrite: bool, progress: bool) -> Run:
    """Everything a run needs, checked before anything is written to its out folder: the
    target's model (restored when resuming), its optimizer, and its data."""
    out = Path(config.run.out)
    check_out_folder(out, resume, overwrite)
    resumed = resume and (out / "last.pt").is_file()
    torch.manual_seed(config.run.seed)
    torch.set_flush_denormal(True)
    kind = HeadTarget if isinstance(config, HeadTrainConfig) else NetworkTarget
    target = kind(config, resumed)
    optimiser = torch.optim.AdamW(target.model.parameters(), lr=config.optim.lr,
                                  weight_decay=config.optim.weight_decay)
    run = Run(config, target, out, resumed, optimiser)
    if resumed:
        restore(run)
    target.prepare(progress)
    run.started = run.last_save = time.monotonic()  # the budget counts training only
    return run


def restore(run: Run) -> None:
    """Weights, optimizer, step and time from the run's ``last.pt``; a checkpoint of the other
    target, or one whose weights do not fit the config's model, is refused in one line."""
    restored, payload = run.target.read(run.last)
    try:
        run.target.model.load_state_dict(restored.state_dict())
        if "optimizer" in payload:  # a weights-only checkpoint restarts the optimizer
            run.optimiser.load_state_dict(payload["optimizer"])
    except (RuntimeError, ValueError, KeyError, TypeError):
        raise StackError(f"{run.last} holds another model than the config describes: pass "
                         f"--overwrite to start the run again, or use the run's config") \
            from None
    meta = payload["meta"]
    try:
        run.step = run.first_step = int(meta["step"])
        # a head checkpoint of an older stackmff counts its time in seconds
        run.minutes_before = float(meta["minutes"] if "minutes" in meta else
                                   meta["seconds"] / 60)
    except (KeyError, TypeError, ValueError):
        raise StackError(f"{run.last} does not say at which step and time it stopped: "
                         f"pass --overwrite to start the run again") from None


def step(run: Run, batch) -> tuple[dict, dict]:
    """One optimizer step on ``batch``; returns its log row and what the progress bar shows
    beside the loss."""
    lr = learning_rate(run.config, run.step, run.minutes())
    for group in run.optimiser.param_groups:
        group["lr"] = lr
    loss, shown = run.target.loss(batch)
    run.optimiser.zero_grad(set_to_none=True)
    loss.backward()
    run.optimiser.step()
    run.step += 1
    value = loss.item()
    return {"step": run.step, "minutes": f"{run.minutes():.2f}", "lr": f"{lr:.3g}",
            "loss": f"{value:.4f}"}, {"loss": f"{value:.3f}", **shown}


def validate(run: Run) -> dict:
    """The target's validation scores, as log columns."""
    return {k: f"{v:.4f}" for k, v in run.target.validate().items()}


def save(run: Run) -> None:
    """``last.pt``: the weights, the optimizer, and meta (step, minutes, the config)."""
    meta = {**run.target.meta, "step": run.step, "minutes": run.minutes(),
            "train_config": run.config.to_dict(), "torch": str(torch.__version__)}
    save_checkpoint(run.last, run.target.model, meta=meta,
                    extra={"optimizer": run.optimiser.state_dict()})
    run.last_save = time.monotonic()


def record(run: Run, row: dict) -> None:
    """Log a completed step; the first one opens the log (a new run replaces an old one only
    now) and, in a new run, writes the first checkpoint beside it."""
    first = run.log is None
    if first:
        run.out.mkdir(parents=True, exist_ok=True)
        log_path = run.out / "log.csv"
        append = run.resumed and log_path.is_file()
        run.log = open(log_path, "a" if append else "w", newline="")
        run.writer = csv.DictWriter(run.log, run.target.log_fields)
        if not append:
            run.writer.writeheader()
    run.writer.writerow(row)
    run.log.flush()
    if first and not run.resumed:
        save(run)  # the log and the checkpoint in the folder now belong to the same run


@contextlib.contextmanager
def stopping_signals() -> Iterator[list[int]]:
    """SIGINT and SIGTERM raise KeyboardInterrupt inside the block (a polite kill still
    writes the last checkpoint); yields the signals received. Handlers live in the main
    thread only; the previous ones come back at the end."""
    received: list[int] = []

    def stop(signum, frame):
        received.append(signum)
        # a second SIGTERM ends the process at once (the checkpoint write is atomic)
        signal.signal(signum, signal.SIG_DFL if signum == signal.SIGTERM
                      else signal.default_int_handler)
        raise KeyboardInterrupt

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def train(config: AnyConfig, resume: bool = False, progress: bool | None = None,
          overwrite: bool = False) -> Path:
    """Train the network or, with a :class:`HeadTrainConfig`, the v3+ head; a run lives in
    ``config.run.out``.

    Args:
        config: the whole training setup; checked before anything is created.
        resume: continue the run in the out folder from its ``last.pt``.
        progress: show progress bars (default: when stderr is a terminal).
        overwrite: replace the run in the out folder; the old one is replaced only once the
            new run has completed a step.

    Returns:
        The path of the last checkpoint (``<out>/last.pt``).

    Raises:
        StackError: a bad config, or an out folder holding a run without resume/overwrite.
        TrainingInterrupted: SIGINT or SIGTERM; the checkpoint keeps every completed step.
    """
    config = config.checked()
    show = sys.stderr.isatty() if progress is None else progress
    run = setup(config, resume, overwrite, show)
    every = config.run.checkpoint_minutes * 60
    bar = tqdm(total=config.run.max_steps, initial=run.step, disable=not show, desc="train")
    interrupted = False
    with stopping_signals() as received:
        try:
            stream = run.target.batches(run.step)
            while not run.out_of_budget():
                row, shown = step(run, next(stream))
                bar.update(1)
                bar.set_postfix(shown)
                if run.step % config.run.validate_every == 0 or run.out_of_budget():
                    row.update(validate(run))
                record(run, row)
                if time.monotonic() - run.last_save >= every:
                    save(run)
        except KeyboardInterrupt:
            interrupted = True  # stop here; the checkpoint below keeps every finished step
        finally:
            finish(run, bar)
    if interrupted:
        kept = run.step > run.first_step or run.resumed
        raise TrainingInterrupted(received[0] if received else signal.SIGINT,
                                  run.last if kept else None, run.step)
    return run.last


def finish(run: Run, bar: tqdm) -> None:
    """The last checkpoint (only after a new step: never one without), then the log closed."""
    try:
        if run.step > run.first_step:
            save(run)
    finally:
        if run.log is not None:
            run.log.close()
        bar.close()
