"""The network's training configuration, read from a TOML file; every checkpoint stores it.

Sections: ``[model]`` (ModelConfig fields), ``[data]``, ``[optim]``, ``[run]``. Missing keys
take the defaults below. Every key is checked (type, range, allowed values) when the config is
read, so a typo fails at once with the key's name, not minutes later with a traceback. A file
with ``target = "head"`` trains the v3+ head instead (:mod:`.head_config`); :func:`load_config`
reads either.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from stackmff.errors import StackError
from stackmff.model import ModelConfig
from stackmff.training.head_config import HeadTrainConfig
from stackmff.training.rules import (
    Rule,
    at_least,
    check_schedule,
    check_sections,
    checked_section,
    config_target,
    fraction,
    read_toml,
)


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
    highlights: float = 0.0             # physical renderer: share with over-exposed highlights
    plateaus: float = 0.0               # physical renderer: share with flat bright plateaus
    emission: float = 0.0               # physical renderer: share as emitted light, no occlusion
    dead_leaves: float = 0.5
    photos: float = 0.4
    motorcycle: float = 0.1
    photo_folder: str | None = None
    debian_photos: bool = False         # add the opencv-doc / lomiri-wallpapers training photos
    workers: int = 1                    # synthesis processes beside the training process
    ordered: bool = False               # keep layers near-to-far (for the V3* depth head)
    rendered: str | None = None         # stacks written by `stackmff synth` (ray-traced)...
    rendered_share: float = 0.0         # ...drawn for this share of the batches


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
    freeze: str = "none"                # "encoder": train the decoder and attention only


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


# The smallest crop the network takes whole: its coarsest stage is 1/32 of the input.
MIN_CROP = 32

RULES: dict[str, dict[str, Rule]] = {
    "model": {
        "stem_width": at_least(1), "widths": Rule("ints", low=1, length=4),
        "blocks_per_stage": at_least(1), "mlp_ratio": at_least(1),
        "drop_path": Rule("float", low=0, high=1, high_open=True),
        "decoder_width": at_least(1), "ppm_width": at_least(1), "ppm_bins": Rule("ints", low=1),
        "attention_layers": at_least(0), "attention_heads": at_least(1),
        "attention_ffn": at_least(1),
        "pos_encoding": Rule("str", choices=("rope", "none")),
        "rope_base": Rule("float", low=0, low_open=True),
        "head": Rule("str", choices=("classification", "depth_regression")),
    },
    "data": {
        "renderer": Rule("str", choices=("physical", "faithful")), "crop": at_least(MIN_CROP),
        "min_layers": at_least(2), "max_layers": at_least(2),
        "layer_sampling": Rule("str", choices=("uniform", "inverse")),
        "batch_size": at_least(1), "label": Rule("str", choices=("error", "depth")),
        "noise": fraction(), "jpeg": fraction(), "highlights": fraction(), "plateaus": fraction(),
        "emission": fraction(),
        "dead_leaves": Rule("float", low=0),
        "photos": Rule("float", low=0), "motorcycle": Rule("float", low=0),
        "photo_folder": Rule("str", optional=True), "debian_photos": Rule("bool"),
        "workers": at_least(0), "ordered": Rule("bool"),
        "rendered": Rule("str", optional=True), "rendered_share": fraction(),
    },
    "optim": {
        "lr": Rule("float", low=0), "weight_decay": Rule("float", low=0),
        "loss": Rule("str", choices=("cross_entropy", "selection_cost", "selection_blend")),
        "schedule": Rule("str", choices=("step", "cosine")),
        "decay": Rule("float", low=0, high=1, low_open=True), "decay_steps": at_least(1),
        "min_lr": Rule("float", low=0), "warmup_steps": at_least(0),
        "freeze": Rule("str", choices=("none", "encoder")),
    },
    "run": {
        "out": Rule("str"), "seed": at_least(0), "max_steps": at_least(1),
        "max_minutes": Rule("float", low=0, low_open=True, optional=True),
        "checkpoint_minutes": Rule("float", low=0), "validate_every": at_least(1),
        "validation_stacks": at_least(1), "validation_size": at_least(MIN_CROP),
        "bf16": Rule("bool"),
        "device": Rule("str", choices=("cpu", "cuda", "auto")),
        "init": Rule("str", optional=True),
    },
}
SECTIONS = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig, "run": RunConfig}


def _model_config(values: dict) -> ModelConfig:
    if values.get("pos_encoding", "rope") == "rope" and values.get("decoder_width", 16) % 2:
        raise StackError(f"[model] decoder_width must be even with pos_encoding = 'rope' "
                         f"(rotary pairs), got {values['decoder_width']}")
    try:
        return ModelConfig.from_dict(values)
    except ValueError as exc:
        raise StackError(f"[model] {str(exc).removeprefix('[model] ')}") from None


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
        """Build and check a config; raises StackError naming the first bad key."""
        if config_target(data) != "network":
            raise StackError("target = 'head' trains the v3+ head: read the file with "
                             "load_config")
        check_sections(data, SECTIONS, "network")
        sections = {name: checked_section(name, data.get(name, {}), kind, RULES[name])
                    for name, kind in SECTIONS.items()}
        config = cls(model=_model_config(sections["model"]),
                     data=DataConfig(**sections["data"]),
                     optim=OptimConfig(**sections["optim"]),
                     run=RunConfig(**sections["run"]))
        config._check_together()
        return config

    def checked(self) -> TrainConfig:
        """This config, checked as if read from a file (for configs built in code)."""
        return TrainConfig.from_dict(self.to_dict())

    def _check_together(self) -> None:
        """The rules that tie keys to each other."""
        data = self.data
        if data.min_layers > data.max_layers:
            raise StackError(f"[data] min_layers ({data.min_layers}) must not exceed "
                             f"max_layers ({data.max_layers})")
        if data.dead_leaves + data.photos + data.motorcycle <= 0:
            raise StackError("[data] dead_leaves, photos and motorcycle are all 0: "
                             "give at least one scene source a weight above 0")
        if data.rendered_share > 0 and not data.rendered:
            raise StackError("[data] rendered_share > 0 draws from [data] rendered: name "
                             "the folder of rendered stacks")
        check_schedule(self.optim)
        if self.model.head == "depth_regression" and not data.ordered:
            raise StackError("the depth_regression head (V3*) learns from ordered stacks: "
                             "set [data] ordered = true")

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read and check a TOML config of the network.

        Raises:
            StackError: the file cannot be read, is not TOML, or a key is wrong.
        """
        data = read_toml(path)
        try:
            return cls.from_dict(data)
        except StackError as exc:
            raise StackError(f"{path}: {exc}") from None


def config_from_dict(data: dict) -> TrainConfig | HeadTrainConfig:
    """A checked :class:`TrainConfig` or, with ``target = "head"``, a
    :class:`~stackmff.training.head_config.HeadTrainConfig`."""
    return HeadTrainConfig.from_dict(data) if config_target(data) == "head" \
        else TrainConfig.from_dict(data)


def load_config(path: str | Path) -> TrainConfig | HeadTrainConfig:
    """Read and check a TOML config of either target (what ``stackmff train`` reads).

    Raises:
        StackError: the file cannot be read, is not TOML, or a key is wrong.
    """
    data = read_toml(path)
    try:
        return config_from_dict(data)
    except StackError as exc:
        raise StackError(f"{path}: {exc}") from None
