"""The StackMFF V3 network: config, blocks, PFMLP backbone, cross-layer attention."""

from stackmff.model.config import ModelConfig
from stackmff.model.network import (
    StackMFFV3,
    StackOutput,
    classification_loss,
    depth_regression_loss,
    selection_cost_loss,
)

__all__ = ["ModelConfig", "StackMFFV3", "StackOutput", "classification_loss",
           "depth_regression_loss", "selection_cost_loss"]
