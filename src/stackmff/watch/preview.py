"""``--live PREVIEW``: a picture of the stack being collected, rewritten after every frame.

The preview is the selection the method makes in one pass (:class:`RunningSelection`): per
pixel the frame with the highest focus measure so far, and that frame's pixel. A new frame
updates it from that frame alone, so the cost of a frame does not grow with the stack. For
``depthmap`` this is its selection before the 5 x 5 median that smooths its focus map (the
median needs, where it changes a pixel's choice, the pixels of frames not chosen there, which
the preview does not keep); for ``variance`` it is the method's result. Other methods (the
network, the transform methods, mip) are previewed with depthmap's focus measure. When a
stack has been fused, the preview becomes its fused image.

Every write is atomic: a viewer never sees half a picture.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from stackmff.classical.selection import RunningSelection, frame_measure, laplacian_measure
from stackmff.errors import StackError
from stackmff.io.atomic import write_files_atomically
from stackmff.io.image import SOFTWARE, encode_image, read_image
from stackmff.io.paths import WRITABLE_SUFFIXES


def check_preview(path: Path) -> None:
    """Refuse a preview that cannot be written as a picture.

    Raises:
        StackError: an unknown picture type, or a folder in its place.
    """
    if path.suffix.lower() not in WRITABLE_SUFFIXES:
        raise StackError(f"--live takes a picture file ({', '.join(sorted(WRITABLE_SUFFIXES))}), "
                         f"got {path}")
    if path.is_dir():
        raise StackError(f"--live {path} is a folder")


class LivePreview:
    """The running selection of the newest stack, written to ``path`` after each frame."""

    def __init__(self, path: Path, method: str) -> None:
        self.path = path
        self.measure = frame_measure(method) or laplacian_measure
        self.stack: int | None = None
        self.selection: RunningSelection | None = None
        self.skipped: set[int] = set()

    def add(self, stack: int, frame: np.ndarray) -> bool:
        """Take the next complete frame of stack number ``stack`` and rewrite the preview;
        returns whether the frame was shown (a frame whose size or type differs from its
        stack's first is not: the fusion decides about it)."""
        if stack != self.stack:
            self.stack, self.selection = stack, RunningSelection(frame.shape[:2], True)
        pixels = self.selection.pixels
        if pixels is not None and (pixels.shape != frame.shape or pixels.dtype != frame.dtype):
            return False
        self.selection.add(self.measure(frame), frame)
        self.write(self.selection.pixels)
        return True

    def show_result(self, stack: int, fused: Path) -> None:
        """The fused image of stack ``stack`` becomes the preview, if that stack is the one
        shown."""
        if stack == self.stack and fused.is_file():
            self.write(read_image(fused).pages[0])

    def write(self, pixels: np.ndarray) -> None:
        with warnings.catch_warnings():  # a 16-bit stack in a JPEG preview: 8 bit is enough
            warnings.simplefilter("ignore")
            data = encode_image(pixels, self.path, software=SOFTWARE)
        write_files_atomically({Path(os.path.abspath(self.path)): data})
