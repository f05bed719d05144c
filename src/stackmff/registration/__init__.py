"""Registration: align the layers of a focus stack before fusion."""

from stackmff.registration.align import Alignment, align_stack
from stackmff.registration.estimate import MODELS

__all__ = ["MODELS", "Alignment", "align_stack"]
