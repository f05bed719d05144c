"""Training configuration, read from a TOML file; every checkpoint stores it.

Sections: ``[model]`` (ModelConfig fields), ``[data]``, ``[optim]``, ``[run]``. Missing keys
take the defaults below.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from stackmff.model import ModelConfig


@dataclass(frozen=True)
class DataConfig:
    renderer: str = "physical"          # "physical" or "faithful" (the paper's Algorithm 1)
    crop: int = 128
    min_layers: int = 2
    max_layers: int = 24
    layer_sampling: str = "uniform"     # N per batch: "uniform" (paper) or "inverse" (P ~ 1/N)
    batch_size: int = 4
    label: str = "error"                # physical renderer: "error" or "depth"
    noise: float = 0.01
    jpeg: float = 0.0
    dead_leaves: float = 0.5
    photos: float = 0.4
    motorcycle: float = 0.1
    photo_folder: str | None = None
    debian_photos: bool = False         # add the opencv-doc / lomiri-wallpapers training photos
    workers: int = 1                    # synthesis processes beside the training process
    ordered: bool = False               # keep layers near-to-far (for the V3* depth head)


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.05
    loss: str = "cross_entropy"         # or "selection_cost" (classification head only)
    schedule: str = "step"              # "step" or "cosine"
    decay: float = 0.9                  # step: lr multiplied by this every `decay_steps` steps
    decay_steps: int = 1000
    min_lr: float = 1e-5                # cosine: from lr at step 0 to min_lr at run.max_steps
    warmup_steps: int = 50


@dataclass(frozen=True)
class RunConfig:
    out: str = "runs/default"
    seed: int = 0
    max_steps: int = 100_000
    max_minutes: float | None = None
    checkpoint_minutes: float = 5.0
    validate_every: int = 250
    validation_stacks: int = 8
    validation_size: int = 128
    bf16: bool = False
    device: str = "cpu"                 # "cpu", "cuda" or "auto" (cuda when available)
    init: str | None = None             # start from this checkpoint's weights (fine-tuning)


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return {"model": self.model.to_dict(), "data": asdict(self.data),
                "optim": asdict(self.optim), "run": asdict(self.run)}

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        def build(kind, values):
            known = {f.name for f in fields(kind)}
            unknown = set(values) - known
            if unknown:
                raise ValueError(f"unknown {kind.__name__} keys: {', '.join(sorted(unknown))}")
            return kind(**values)

        unknown = set(data) - {"model", "data", "optim", "run"}
        if unknown:
            raise ValueError(f"unknown config sections: {', '.join(sorted(unknown))}")
        config = cls(model=ModelConfig.from_dict(data.get("model", {})),
                     data=build(DataConfig, data.get("data", {})),
                     optim=build(OptimConfig, data.get("optim", {})),
                     run=build(RunConfig, data.get("run", {})))
        if config.optim.loss not in ("cross_entropy", "selection_cost"):
            raise ValueError(f"[optim] loss must be 'cross_entropy' or 'selection_cost', "
                             f"got {config.optim.loss!r}")
        if config.optim.schedule not in ("step", "cosine"):
            raise ValueError(f"[optim] schedule must be 'step' or 'cosine', "
                             f"got {config.optim.schedule!r}")
        if config.data.layer_sampling not in ("uniform", "inverse"):
            raise ValueError(f"[data] layer_sampling must be 'uniform' or 'inverse', "
                             f"got {config.data.layer_sampling!r}")
        if config.run.device not in ("cpu", "cuda", "auto"):
            raise ValueError(f"[run] device must be 'cpu', 'cuda' or 'auto', "
                             f"got {config.run.device!r}")
        if config.model.head == "depth_regression" and not config.data.ordered:
            raise ValueError("the depth_regression head (V3*) learns from ordered stacks: "
                             "set [data] ordered = true")
        return config

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        with open(path, "rb") as handle:
            return cls.from_dict(tomllib.load(handle))
