"""Training the network on synthetic stacks (never imported by inference code)."""

from stackmff.training.config import TrainConfig
from stackmff.training.loop import train

__all__ = ["TrainConfig", "train"]
