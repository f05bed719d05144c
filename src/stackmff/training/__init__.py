"""Training the network, or the v3+ head on its cached logits, from one TOML config (never
imported by inference code)."""

from stackmff.training.config import TrainConfig, load_config
from stackmff.training.head_config import HeadTrainConfig
from stackmff.training.loop import train

__all__ = ["HeadTrainConfig", "TrainConfig", "load_config", "train"]
