"""The StackMFF V3 network: config, blocks, PFMLP backbone, cross-layer attention."""

from stackmff.model.config import ModelConfig
from stackmff.model.network import StackMFFV3, StackOutput

__all__ = ["ModelConfig", "StackMFFV3", "StackOutput"]
