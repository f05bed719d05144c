"""stackmff: fuse a focus stack into one all-in-focus image.

Typical use::

    import stackmff
    stack = stackmff.load_stack("shots/")
    result = stackmff.fuse_stack(stack, method="depthmap")
    stackmff.save_result(result, stack, "fused.png")
"""

from stackmff.api import DEFAULT_METHOD, fuse_stack, save_result
from stackmff.classical import get_method, list_methods
from stackmff.errors import StackError
from stackmff.io import Stack, load_stack
from stackmff.result import FusionResult

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_METHOD",
    "FusionResult",
    "Stack",
    "StackError",
    "fuse_stack",
    "get_method",
    "list_methods",
    "load_stack",
    "save_result",
]
