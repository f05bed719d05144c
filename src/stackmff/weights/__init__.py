"""The network's weights: the model that ships with the package, and checkpoint files.

The shipped model's card is ``weights/MODEL_CARD.md``. Importing this package does not import
torch; :mod:`stackmff.weights.checkpoint` does.
"""

from __future__ import annotations

from pathlib import Path

from stackmff.errors import StackError

SHIPPED_WEIGHTS = Path(__file__).parent / "stackmff-v3.pt"
SHIPPED_HEAD = Path(__file__).parent / "stackmff-v3plus-head.pt"


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


def head_weights(head: str | Path | None = None) -> Path:
    """The ``v3+`` refinement head: ``head`` if given, else the shipped one."""
    path = SHIPPED_HEAD if head is None else Path(head)
    if path.is_file():
        return path
    if head is None:
        raise StackError(f"method v3+ needs a refinement head: pass --head PATH "
                         f"(no shipped head at {SHIPPED_HEAD})")
    raise StackError(f"no such head: {path}")
