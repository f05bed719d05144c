"""The network's options, frozen, so a checkpoint can describe the model it holds."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal


@dataclass(frozen=True)
class ModelConfig:
    """StackMFF V3 configuration. The defaults are the paper's (faithful) network.

    Attributes:
        stem_width: channels of the stride-2 stem.
        widths: channels of the four encoder stages (each halves the resolution).
        blocks_per_stage: bottleneck blocks per stage.
        mlp_ratio: expansion of the pyramid-FC and channel-MLP hidden layers.
        drop_path: the largest stochastic-depth rate (linear over blocks).
        decoder_width: channels of the UPerNet decoder and of the probability volume (C0).
        ppm_width: channels of each pyramid-pooling branch.
        ppm_bins: output sizes of the pyramid-pooling branches.
        attention_layers, attention_heads, attention_ffn: the cross-layer transformer.
        pos_encoding: ``"rope"`` (the paper) or ``"none"`` (exactly permutation-equivariant).
        head: ``"classification"`` (V3: cross-entropy over layers) or ``"depth_regression"``
            (V3*: softmax expectation of the normalised layer position, for ordered stacks).
    """

    stem_width: int = 16
    widths: tuple[int, ...] = (32, 64, 128, 256)
    blocks_per_stage: int = 2
    mlp_ratio: int = 3
    drop_path: float = 0.1
    decoder_width: int = 16
    ppm_width: int = 64
    ppm_bins: tuple[int, ...] = (1, 2, 3, 6)
    attention_layers: int = 2
    attention_heads: int = 4
    attention_ffn: int = 64
    pos_encoding: Literal["rope", "none"] = "rope"
    rope_base: float = 10000.0
    head: Literal["classification", "depth_regression"] = "classification"

    def __post_init__(self) -> None:
        if self.pos_encoding not in ("rope", "none"):
            raise ValueError(f"pos_encoding must be 'rope' or 'none', got {self.pos_encoding!r}")
        if self.head not in ("classification", "depth_regression"):
            raise ValueError(f"head must be 'classification' or 'depth_regression', got {self.head!r}")
        if self.decoder_width % self.attention_heads:
            raise ValueError(f"decoder_width {self.decoder_width} is not divisible by "
                             f"attention_heads {self.attention_heads}")
        if len(self.widths) != 4:
            raise ValueError(f"widths must name 4 stages, got {self.widths}")

    def to_dict(self) -> dict:
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
                 if k in cls.__dataclass_fields__}
        return cls(**known)
