"""The network's options, frozen, so a checkpoint can describe the model it holds."""

from __future__ import annotations

import math
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
        for key in ("widths", "ppm_bins"):  # lists (from TOML or JSON) become tuples
            if isinstance(getattr(self, key), list):
                object.__setattr__(self, key, tuple(getattr(self, key)))
        self.validate()

    def validate(self) -> None:
        """Check every option's type and range, so that a bad config (from a file, a
        checkpoint) is refused by name before any weight is allocated.

        Raises:
            ValueError: naming the option and its allowed range.
        """
        for key, (low, high) in _INT_RANGES.items():
            _check_int(key, getattr(self, key), low, high)
        for key, (count, low, high) in _SEQUENCE_RANGES.items():
            value = getattr(self, key)
            counts = range(count[0], count[1] + 1)
            if (not isinstance(value, tuple) or len(value) not in counts
                    or not all(_is_int(v) and low <= v <= high for v in value)):
                number = (f"{count[0]}" if count[0] == count[1]
                          else f"{count[0]} to {count[1]}")
                raise ValueError(f"{key} must be {number} whole numbers in {low}..{high}, "
                                 f"got {_shown(value)}")
        if not _is_number(self.drop_path) or not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"drop_path must be a number in 0..1 (1 excluded), "
                             f"got {_shown(self.drop_path)}")
        if not _is_number(self.rope_base) or not 1.0 < self.rope_base <= 1e9:
            raise ValueError(f"rope_base must be a number above 1 and at most 1e9, "
                             f"got {_shown(self.rope_base)}")
        if self.pos_encoding not in ("rope", "none"):
            raise ValueError(f"pos_encoding must be 'rope' or 'none', "
                             f"got {_shown(self.pos_encoding)}")
        if self.head not in ("classification", "depth_regression"):
            raise ValueError(f"head must be 'classification' or 'depth_regression', "
                             f"got {_shown(self.head)}")
        if self.decoder_width % self.attention_heads:
            raise ValueError(f"decoder_width {self.decoder_width} is not divisible by "
                             f"attention_heads {self.attention_heads}")
        if self.pos_encoding == "rope" and self.decoder_width % 2:
            raise ValueError(f"decoder_width must be even with pos_encoding 'rope', "
                             f"got {self.decoder_width}")
        if self.approximate_weights() > MAX_WEIGHTS:
            raise ValueError(f"the model options describe about "
                             f"{self.approximate_weights() / 1e6:.0f} million weights; at most "
                             f"{MAX_WEIGHTS // 1_000_000} million are allowed")

    def approximate_weights(self) -> int:
        """The network's weight count from its options (the dominant terms: within a few
        percent), without building it."""
        total, channels = 0, self.stem_width
        for width in self.widths:
            for _ in range(self.blocks_per_stage):
                total += self.mlp_ratio * (5 * channels**2 + channels * width + width**2)
                channels = width
        c0, deepest, bins = self.decoder_width, self.widths[-1], len(self.ppm_bins)
        total += bins * deepest * self.ppm_width + (deepest + self.ppm_width * bins) * c0
        total += sum(self.widths[:-1]) * c0 + 40 * c0**2
        return total + self.attention_layers * (4 * c0**2 + 2 * c0 * self.attention_ffn)

    def to_dict(self) -> dict:
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Build a config from plain data (a TOML table, a checkpoint's ``model_config``).

        Raises:
            ValueError: ``data`` is not a mapping, names an unknown option, or holds a value
                of the wrong type or range.
        """
        if not isinstance(data, dict):
            raise ValueError(f"model options must be a table of names and values, "
                             f"got {type(data).__name__}")
        unknown = sorted(str(k) for k in data if k not in cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown model option(s): {', '.join(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


# A config describing more weights is refused (the faithful network has 2.7 million; one
# with every width 8x the faithful has about 170 million).
MAX_WEIGHTS = 256_000_000
# Allowed sizes: generous (8x the faithful network's where it has a size) but bounded, so
# that a config cannot ask for more memory than a machine has before anything is checked.
_INT_RANGES = {
    "stem_width": (1, 128),
    "blocks_per_stage": (1, 16),
    "mlp_ratio": (1, 24),
    "decoder_width": (1, 128),
    "ppm_width": (1, 512),
    "attention_layers": (0, 16),
    "attention_heads": (1, 32),
    "attention_ffn": (1, 512),
}
_SEQUENCE_RANGES = {  # option: ((fewest, most) entries, least value, largest value)
    "widths": ((4, 4), 1, 2048),
    "ppm_bins": ((1, 8), 1, 48),
}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_int(key: str, value, low: int, high: int) -> None:
    if not _is_int(value) or not low <= value <= high:
        raise ValueError(f"{key} must be a whole number in {low}..{high}, got {_shown(value)}")
