"""The network's weights: the model that ships with the package, and checkpoint files.

The shipped model's card is ``weights/MODEL_CARD.md``. Importing this package does not import
torch; :mod:`stackmff.weights.checkpoint` does.
"""

from __future__ import annotations

from pathlib import Path

from stackmff.errors import StackError

SHIPPED_WEIGHTS = Path(__file__).parent / "stackmff-v3.pt"


def network_weights(checkpoint: str | Path | None = None) -> Path:
    """The weights the network runs with: ``checkpoint`` if given, else the shipped model."""
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise StackError(f"no such checkpoint: {path}")
        return path
    if SHIPPED_WEIGHTS.is_file():
        return SHIPPED_WEIGHTS
    raise StackError("method v3 needs trained weights: pass --checkpoint PATH "
                     f"(no shipped model at {SHIPPED_WEIGHTS})")
