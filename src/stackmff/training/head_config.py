"""The v3+ head's training configuration: a TOML file with ``target = "head"``.

Sections: ``[head]`` (HeadConfig fields), ``[cache]`` (the stacks whose network logits are
computed once and cached: rendered by the physical renderer, or read from a folder of
rendered stacks such as the ray-traced ones), ``[data]`` (the crops cut from them), ``[optim]``, ``[run]``.
Missing keys take the defaults below: the settings of the shipped head's run, except its head
shape (``configs/head.toml`` spells them all out). Every key is checked as for the network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from stackmff.errors import StackError
from stackmff.model.refine import HeadConfig
from stackmff.training.rules import (
    Rule,
    at_least,
    check_schedule,
    check_sections,
    checked_section,
    config_target,
    fraction,
)

MIN_CROP = 16  # the head is a few 3x3 convolutions: any crop a little wider than its reach


@dataclass(frozen=True)
class CacheConfig:
    folder: str = "runs/head-cache"
    network: str | None = None          # the frozen network (default: the shipped weights)
    device: str = "cpu"                 # where the network runs: "cpu", "cuda" or "auto"
    stacks: int = 1100
    held_out: int = 48                  # the last stacks, never trained on: the validation
    crop: int = 128
    seed: int = 0                       # stack i is drawn from the seed (seed, i)
    min_layers: int = 2
    max_layers: int = 24
    noise: float = 0.01
    jpeg: float = 0.2
    highlights: float = 0.0             # share of stacks with over-exposed highlights
    plateaus: float = 0.0               # share of stacks with flat bright plateaus
    emission: float = 0.0               # share of stacks as emitted light, no occlusion
    dead_leaves: float = 0.4
    photos: float = 0.5
    motorcycle: float = 0.1
    photo_folder: str | None = None
    debian_photos: bool = True
    rendered: str | None = None         # stacks written by `stackmff synth` (e.g. ray-traced),
    #                                     taken in their order instead of rendering here...
    rendered_every: int = 1             # ...for every k-th stack (i % k == 0); the others are
    #                                     rendered here as without `rendered`


@dataclass(frozen=True)
class HeadDataConfig:
    crop: int = 64                      # random crops of the cached stacks, flipped and turned
    batch_size: int = 4                 # stacks per step


@dataclass(frozen=True)
class HeadOptimConfig:
    lr: float = 2e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"            # as for the network: "step" or "cosine"
    decay: float = 0.9
    decay_steps: int = 1000
    min_lr: float = 0.0
    warmup_steps: int = 0
    psnr_weight: float = 1.0            # weight of the log squared error of the blend


@dataclass(frozen=True)
class HeadRunConfig:
    out: str = "runs/head"
    seed: int = 0
    max_steps: int = 3000
    max_minutes: float | None = None
    checkpoint_minutes: float = 5.0
    validate_every: int = 250
    init: str | None = None             # start from this head file's weights


DEVICE = Rule("str", choices=("cpu", "cuda", "auto"))

RULES: dict[str, dict[str, Rule]] = {
    "head": {"width": at_least(1), "fine_sigma": Rule("float", low=0, low_open=True),
             "coarse_sigma": Rule("float", low=0, low_open=True), "dilated": at_least(0)},
    "cache": {
        "folder": Rule("str"), "network": Rule("str", optional=True), "device": DEVICE,
        "stacks": at_least(2), "held_out": at_least(1), "crop": at_least(MIN_CROP),
        "seed": at_least(0), "min_layers": at_least(2), "max_layers": at_least(2),
        "noise": fraction(), "jpeg": fraction(), "highlights": fraction(), "plateaus": fraction(),
        "emission": fraction(),
        "dead_leaves": Rule("float", low=0),
        "photos": Rule("float", low=0), "motorcycle": Rule("float", low=0),
        "photo_folder": Rule("str", optional=True), "debian_photos": Rule("bool"),
        "rendered": Rule("str", optional=True), "rendered_every": at_least(1),
    },
    "data": {"crop": at_least(MIN_CROP), "batch_size": at_least(1)},
    "optim": {
        "lr": Rule("float", low=0), "weight_decay": Rule("float", low=0),
        "schedule": Rule("str", choices=("step", "cosine")),
        "decay": Rule("float", low=0, high=1, low_open=True), "decay_steps": at_least(1),
        "min_lr": Rule("float", low=0), "warmup_steps": at_least(0),
        "psnr_weight": Rule("float", low=0),
    },
    "run": {
        "out": Rule("str"), "seed": at_least(0), "max_steps": at_least(1),
        "max_minutes": Rule("float", low=0, low_open=True, optional=True),
        "checkpoint_minutes": Rule("float", low=0), "validate_every": at_least(1),
        "init": Rule("str", optional=True),
    },
}
SECTIONS = {"head": HeadConfig, "cache": CacheConfig, "data": HeadDataConfig,
            "optim": HeadOptimConfig, "run": HeadRunConfig}


def _section(name: str, kind: type, values) -> object:
    """One section built from its checked keys; the head's own limits on its sizes (the same
    that a head file meets) become one line naming the key."""
    try:
        return kind(**checked_section(name, values, kind, RULES[name]))
    except ValueError as exc:
        raise StackError(f"[{name}] {exc}") from None


@dataclass(frozen=True)
class HeadTrainConfig:
    head: HeadConfig = field(default_factory=HeadConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    data: HeadDataConfig = field(default_factory=HeadDataConfig)
    optim: HeadOptimConfig = field(default_factory=HeadOptimConfig)
    run: HeadRunConfig = field(default_factory=HeadRunConfig)

    def to_dict(self) -> dict:
        return {"target": "head", "head": self.head.to_dict(), "cache": asdict(self.cache),
                "data": asdict(self.data), "optim": asdict(self.optim), "run": asdict(self.run)}

    @classmethod
    def from_dict(cls, data: dict) -> HeadTrainConfig:
        """Build and check a config; raises StackError naming the first bad key."""
        if config_target(data) != "head":
            raise StackError("a v3+ head config needs target = 'head'")
        check_sections(data, SECTIONS, "head")
        values = {name: _section(name, kind, data.get(name, {}))
                  for name, kind in SECTIONS.items()}
        config = cls(**values)
        config._check_together()
        return config

    def checked(self) -> HeadTrainConfig:
        """This config, checked as if read from a file (for configs built in code)."""
        return HeadTrainConfig.from_dict(self.to_dict())

    def _check_together(self) -> None:
        """The rules that tie keys to each other."""
        cache, data = self.cache, self.data
        if cache.min_layers > cache.max_layers:
            raise StackError(f"[cache] min_layers ({cache.min_layers}) must not exceed "
                             f"max_layers ({cache.max_layers})")
        if cache.dead_leaves + cache.photos + cache.motorcycle <= 0:
            raise StackError("[cache] dead_leaves, photos and motorcycle are all 0: "
                             "give at least one scene source a weight above 0")
        if cache.held_out >= cache.stacks:
            raise StackError(f"[cache] held_out ({cache.held_out}) must be below stacks "
                             f"({cache.stacks}): the rest are the training stacks")
        if data.batch_size > cache.stacks - cache.held_out:
            raise StackError(f"[data] batch_size ({data.batch_size}) must not exceed the "
                             f"{cache.stacks - cache.held_out} training stacks of the cache")
        if data.crop > cache.crop:
            raise StackError(f"[data] crop ({data.crop}) must not exceed [cache] crop "
                             f"({cache.crop}): crops are cut from the cached stacks")
        check_schedule(self.optim)
