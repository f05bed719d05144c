"""Classical fusion methods and focus measures, registered in the one method registry.

Importing this package registers: depthmap, pyramid, dwt, dtcwt, dct, and the projections
microscopists know, mip and variance.
"""

from stackmff.classical import (  # noqa: F401  (registers)
    dct,
    depthmap,
    dtcwt,
    dwt,
    projections,
    pyramid,
)
