"""stackmff: fuse a focus stack into one all-in-focus image.

Typical use::

    import stackmff
    stack = stackmff.load_stack("shots/")
    result = stackmff.fuse_stack(stack, method="depthmap")
    stackmff.save_result(result, stack, "fused.png")
"""

from stackmff.api import (
    DEFAULT_METHOD,
    fuse_files,
    fuse_stack,
    prepare_method,
    save_result,
)
from stackmff.errors import StackError
from stackmff.io import Stack, load_stack
from stackmff.methods import get_method, list_methods
from stackmff.result import FusionResult
from stackmff.retouch import Retouch, regather
from stackmff.stack_ops import gather, luma

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_METHOD",
    "FusionResult",
    "Retouch",
    "Stack",
    "StackError",
    "fuse_files",
    "fuse_stack",
    "gather",
    "get_method",
    "list_methods",
    "load_stack",
    "luma",
    "prepare_method",
    "regather",
    "save_result",
]
