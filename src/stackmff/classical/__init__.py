"""Classical fusion methods and focus measures, all in one registry.

Importing this package registers: depthmap, pyramid, dwt, dtcwt, dct.
"""

from stackmff.classical import dct, depthmap, dtcwt, dwt, pyramid  # noqa: F401  (registers)
from stackmff.classical.common import gather, luma
from stackmff.classical.registry import FusionMethod, get_method, list_methods, register

__all__ = ["FusionMethod", "gather", "get_method", "list_methods", "luma", "register"]
