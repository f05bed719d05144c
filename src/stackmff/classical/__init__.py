"""Classical fusion methods and focus measures, registered in the one method registry.

Importing this package registers: depthmap, pyramid, dwt, dtcwt, dct.
"""

from stackmff.classical import dct, depthmap, dtcwt, dwt, pyramid  # noqa: F401  (registers)
