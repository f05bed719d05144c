"""Microscopy formats: OME-TIFF, OME-Zarr and ImageJ hyperstacks with axes T, C, Z, Y, X.

A format package: it reads (one (scene, T) stack at a time, lazily) and writes these files with
their metadata (physical sizes, Z origin, channels) and knows nothing of methods or of how
stacks are fused; :mod:`stackmff.pipeline` fuses them. OME-Zarr needs the optional extra
``stackmff[microscopy]`` (``zarr``), imported only when one is read or written.
"""

from stackmff.microscopy.axes import Metadata
from stackmff.microscopy.source import Source, is_microscopy_file, open_source

__all__ = ["Metadata", "Source", "is_microscopy_file", "open_source"]
