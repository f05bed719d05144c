"""Microscopy images: OME-TIFF, OME-Zarr and ImageJ hyperstacks with axes T, C, Z, Y, X.

Z is the focus axis and every (scene, T) is one stack, read lazily one at a time. The focus is
decided on one channel (or the mean of all) and every channel is taken from the same layer;
outputs keep the dtype, the physical pixel sizes and the channels, and heights come in µm.
OME-Zarr needs the optional extra ``stackmff[microscopy]`` (``zarr``), imported only when one
is read or written.
"""

from stackmff.microscopy.axes import Metadata
from stackmff.microscopy.source import Source, is_microscopy_file, open_source

__all__ = ["Metadata", "Source", "is_microscopy_file", "open_source"]
