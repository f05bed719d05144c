"""What the training loop needs to train the v3+ head: the head over the frozen network's
cached logits, batches of random crops of the cached stacks, the head's loss, and its
validation on the held-out cached stacks beside the network alone."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from stackmff.errors import StackError
from stackmff.metrics import psnr
from stackmff.model.refine import HeadConfig, RefineHead, features
from stackmff.training.head_cache import build_cache, load_stack, stack_path
from stackmff.training.head_config import HeadTrainConfig
from stackmff.training.losses import head_loss
from stackmff.training.network_target import mean_psnr
from stackmff.weights.head import KIND, load_head

LOG_FIELDS = ("step", "minutes", "lr", "loss", "val_hard", "val_soft", "val_network_hard",
              "val_network_soft")


def augment(sample: dict, crop: int, rng: np.random.Generator) -> dict:
    """The same random crop, flips and quarter turn of every array of ``sample`` (layers on
    axis 0 or none); the head's inputs go float32 here."""
    h, w = sample["grey"].shape[-2:]
    y, x = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
    turns, flip = int(rng.integers(4)), bool(rng.integers(2))
    result = {}
    for key in ("grey", "features", "label", "truth"):
        a = np.rot90(sample[key][..., y:y + crop, x:x + crop], turns, axes=(-2, -1))
        result[key] = np.ascontiguousarray(a[..., ::-1] if flip else a)
    result["features"] = result["features"].astype(np.float32)
    return result


def with_features(sample: dict, config: HeadConfig) -> dict:
    """The sample with the head's inputs computed once, on the whole cached crop (the focus
    measures commute with the flips and quarter turns of :func:`augment`)."""
    found = features(torch.from_numpy(sample["logits"]), torch.from_numpy(sample["grey"]), config)
    return {"grey": sample["grey"], "label": sample["label"], "truth": sample["truth"],
            "features": found.numpy().astype(np.float16)}  # half the memory; crops go float


def blend_scores(logits: torch.Tensor, grey: torch.Tensor, truth: np.ndarray) -> tuple:
    """PSNR of the hard gather and of the soft blend that ``logits`` give, against ``truth``."""
    hard = grey.gather(0, logits.argmax(0)[None])[0]
    soft = (logits.softmax(0) * grey).sum(0)
    return psnr(hard.numpy(), truth), psnr(soft.numpy(), truth)


class HeadTarget:
    """The v3+ refinement head, trained on the frozen network's cached logits."""

    log_fields = LOG_FIELDS
    meta = {"kind": KIND}  # what makes the checkpoint a head file (load_head checks it)

    def __init__(self, config: HeadTrainConfig, resumed: bool) -> None:
        """The head, from ``[run] init`` (a head file) unless the run resumes."""
        self.config = config
        self.model = RefineHead(config.head)
        if config.run.init and not resumed:
            try:
                start = self.read(config.run.init)[0]
            except StackError as exc:
                raise StackError(f"[run] init: {exc}") from None
            if start.config != config.head:
                raise StackError(f"[run] init: {config.run.init} is a head with {start.config}, "
                                 f"[head] asks for {config.head}")
            self.model.load_state_dict(start.state_dict())
        self.training: list[dict] = []
        self.held_out: list[dict] = []
        self.network_scores: dict[str, float] = {}

    @staticmethod
    def read(path) -> tuple[RefineHead, dict]:
        return load_head(path)

    def prepare(self, progress: bool = False) -> None:
        """The cache completed and read: the training stacks with the head's inputs, the
        held-out ones as cached, and the network's own scores on those."""
        cache = self.config.cache
        build_cache(cache, progress)
        files = [stack_path(Path(cache.folder), i) for i in range(cache.stacks)]
        split = cache.stacks - cache.held_out
        self.training = [with_features(load_stack(p), self.config.head) for p in files[:split]]
        self.held_out = [load_stack(p) for p in files[split:]]
        scores = [blend_scores(torch.from_numpy(s["logits"]), torch.from_numpy(s["grey"]),
                               s["truth"]) for s in self.held_out]
        self.network_scores = {"val_network_hard": mean_psnr([s[0] for s in scores]),
                               "val_network_soft": mean_psnr([s[1] for s in scores])}
        self.model.train()

    def batches(self, step: int) -> Iterator[list[dict]]:
        """Each step's stacks and crops drawn from the seed ``(seed, step)``: a resumed run
        sees the batches the uninterrupted one would have."""
        for at in itertools.count(step):
            rng = np.random.default_rng([self.config.run.seed, at])
            chosen = rng.choice(len(self.training), self.config.data.batch_size, replace=False)
            yield [augment(self.training[i], self.config.data.crop, rng) for i in chosen]

    def loss(self, batch: list[dict]) -> tuple[torch.Tensor, dict]:
        """The mean loss of the batch's stacks (nothing beside it on the progress bar)."""
        total = torch.zeros(())
        for s in batch:
            logits = self.model.from_features(torch.from_numpy(s["features"]))
            total = total + head_loss(logits, torch.from_numpy(s["grey"]),
                                      torch.from_numpy(s["label"]), torch.from_numpy(s["truth"]),
                                      self.config.optim.psnr_weight) / len(batch)
        return total, {}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean luma PSNR of the hard gather and the soft blend on the held-out stacks, the
        head's and the network's alone."""
        self.model.eval()
        scores = []
        for s in self.held_out:
            grey = torch.from_numpy(s["grey"])
            scores.append(blend_scores(self.model(torch.from_numpy(s["logits"]), grey), grey,
                                       s["truth"]))
        self.model.train()
        return {"val_hard": mean_psnr([s[0] for s in scores]),
                "val_soft": mean_psnr([s[1] for s in scores]), **self.network_scores}
