"""Training configuration, read from a TOML file; every checkpoint stores it.

Sections: ``[model]`` (ModelConfig fields), ``[data]``, ``[optim]``, ``[run]``. Missing keys
take the defaults below. Every key is checked (type, range, allowed values) when the config is
read, so a typo fails at once with the key's name, not minutes later with a traceback.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from stackmff.errors import StackError
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
class Rule:
    """What one config key accepts: a kind (``int``, ``float``, ``bool``, ``str`` or ``ints``,
    a list of integers), an optional range, allowed strings, and a list length."""

    kind: str
    low: float | None = None
    high: float | None = None
    high_open: bool = False             # the range excludes ``high``
    low_open: bool = False              # the range excludes ``low``
    choices: tuple[str, ...] = ()
    length: int | None = None           # ints: exactly this many (else at least one)
    optional: bool = False              # None (the default) is accepted

    def describe(self) -> str:
        if self.kind == "bool":
            return "true or false"
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        noun = {"int": "an integer", "float": "a number", "str": "a non-empty string",
                "ints": f"a list of {self.length or 'one or more'} integers"}[self.kind]
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{noun} in {left}{_number(self.low)}, {_number(self.high)}{right}"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {_number(self.low)}"
        return noun

    def check(self, where: str, value):
        """``value`` in its canonical type (lists become tuples); raises StackError."""
        if value is None and self.optional:
            return None
        if self.kind == "ints":
            fits = (isinstance(value, list | tuple) and len(value) > 0
                    and len(value) == (self.length or len(value))
                    and all(self._fits(item) for item in value))
        else:
            fits = self._fits(value)
        if not fits:
            raise StackError(f"{where} must be {self.describe()}, got {value!r}")
        if self.kind == "ints":
            return tuple(value)
        return float(value) if self.kind == "float" else value

    def _fits(self, value) -> bool:
        kind = "int" if self.kind == "ints" else self.kind
        if kind == "bool" or isinstance(value, bool):
            return kind == "bool" and isinstance(value, bool)
        if kind == "str":
            return isinstance(value, str) and value != "" and (
                not self.choices or value in self.choices)
        if not isinstance(value, int if kind == "int" else int | float) or not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _int(low: int) -> Rule:
    return Rule("int", low=low)


def _fraction() -> Rule:
    return Rule("float", low=0, high=1)


# The smallest crop the network takes whole: its coarsest stage is 1/32 of the input.
MIN_CROP = 32

RULES: dict[str, dict[str, Rule]] = {
    "model": {
        "stem_width": _int(1), "widths": Rule("ints", low=1, length=4),
        "blocks_per_stage": _int(1), "mlp_ratio": _int(1),
        "drop_path": Rule("float", low=0, high=1, high_open=True),
        "decoder_width": _int(1), "ppm_width": _int(1), "ppm_bins": Rule("ints", low=1),
        "attention_layers": _int(0), "attention_heads": _int(1), "attention_ffn": _int(1),
        "pos_encoding": Rule("str", choices=("rope", "none")),
        "rope_base": Rule("float", low=0, low_open=True),
        "head": Rule("str", choices=("classification", "depth_regression")),
    },
    "data": {
        "renderer": Rule("str", choices=("physical", "faithful")), "crop": _int(MIN_CROP),
        "min_layers": _int(2), "max_layers": _int(2),
        "layer_sampling": Rule("str", choices=("uniform", "inverse")),
        "batch_size": _int(1), "label": Rule("str", choices=("error", "depth")),
        "noise": _fraction(), "jpeg": _fraction(), "dead_leaves": Rule("float", low=0),
        "photos": Rule("float", low=0), "motorcycle": Rule("float", low=0),
        "photo_folder": Rule("str", optional=True), "debian_photos": Rule("bool"),
        "workers": _int(0), "ordered": Rule("bool"),
    },
    "optim": {
        "lr": Rule("float", low=0), "weight_decay": Rule("float", low=0),
        "loss": Rule("str", choices=("cross_entropy", "selection_cost", "selection_blend")),
        "schedule": Rule("str", choices=("step", "cosine")),
        "decay": Rule("float", low=0, high=1, low_open=True), "decay_steps": _int(1),
        "min_lr": Rule("float", low=0), "warmup_steps": _int(0),
    },
    "run": {
        "out": Rule("str"), "seed": _int(0), "max_steps": _int(1),
        "max_minutes": Rule("float", low=0, low_open=True, optional=True),
        "checkpoint_minutes": Rule("float", low=0), "validate_every": _int(1),
        "validation_stacks": _int(1), "validation_size": _int(MIN_CROP), "bf16": Rule("bool"),
        "device": Rule("str", choices=("cpu", "cuda", "auto")),
        "init": Rule("str", optional=True),
    },
}
SECTIONS = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig, "run": RunConfig}


def _checked_section(name: str, values) -> dict:
    """The keys of one section, each checked against its rule."""
    if not isinstance(values, dict):
        raise StackError(f"[{name}] must be a table of keys, got {values!r}")
    known = [f.name for f in fields(SECTIONS[name])]
    for key in values:
        if key not in known:
            raise StackError(f"[{name}] has no key {key!r}; its keys are {', '.join(known)}")
    rules = RULES[name]
    return {k: rules[k].check(f"[{name}] {k}", v) if k in rules else v for k, v in values.items()}


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
        if not isinstance(data, dict):
            raise StackError(f"a training config is a table of sections, got {data!r}")
        for name in data:
            if name not in SECTIONS:
                raise StackError(f"unknown config section [{name}]; the sections are "
                                 f"{', '.join(f'[{s}]' for s in SECTIONS)}")
        sections = {name: _checked_section(name, data.get(name, {})) for name in SECTIONS}
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
        if self.optim.schedule == "cosine" and self.optim.min_lr > self.optim.lr:
            raise StackError(f"[optim] min_lr ({self.optim.min_lr:g}) must not exceed lr "
                             f"({self.optim.lr:g}) with schedule = 'cosine'")
        if self.model.head == "depth_regression" and not data.ordered:
            raise StackError("the depth_regression head (V3*) learns from ordered stacks: "
                             "set [data] ordered = true")

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read and check a TOML config.

        Raises:
            StackError: the file cannot be read, is not TOML, or a key is wrong.
        """
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except OSError as exc:
            raise StackError(f"cannot read config {path}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise StackError(f"config {path} is not valid TOML: {exc}") from None
        try:
            return cls.from_dict(data)
        except StackError as exc:
            raise StackError(f"{path}: {exc}") from None
