"""Frames in a watched folder: which files are candidates, and when one counts.

A camera or a microscope writes a frame over some time, sometimes in pieces with pauses. A
frame counts only when it is complete: its size and modification time have stayed the same
for ``settle`` seconds, and it decodes whole (a JPEG must also end with its end marker, since
decoders fill a cut JPEG with grey instead of failing). A frame that stays the same but does
not decode waits for its next change; if none comes before its stack ends, it is left out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stackmff.errors import StackError
from stackmff.io.image import JPEG_MAGIC, is_own_output, read_image
from stackmff.io.paths import is_image_path, natural_key

JPEG_END = b"\xff\xd9"
# a frame's states: being written or not yet checked; whole; stable but not decodable (it
# waits for a change); a product stackmff wrote (a preview, an earlier result): never a frame
PENDING, COMPLETE, BROKEN, OWN = "pending", "complete", "broken", "own output"


@dataclass
class Frame:
    """One image file seen in the watched folder.

    Attributes:
        path: the file (absolute).
        folder: its folder relative to the watched one, POSIX (``""`` for the folder itself).
        signature: ``(size, modification time in ns)`` when last seen.
        changed: the watch's clock when the signature last changed (or the file appeared).
        order: where it stands among the frames of its folder (arrival, then name).
        state: :data:`PENDING`, :data:`COMPLETE`, :data:`BROKEN` or :data:`OWN`.
        error: why a broken frame does not decode.
        pixels: a complete frame's pixels until the preview has taken them.
    """

    path: Path
    folder: str
    signature: tuple[int, int]
    changed: float
    order: tuple
    state: str = PENDING
    error: str | None = None
    pixels: np.ndarray | None = None

    def observe(self, signature: tuple[int, int], now: float) -> bool:
        """Note the file as seen now; returns whether it changed (a changed frame is checked
        again once it settles)."""
        if signature == self.signature:
            return False
        self.signature, self.changed = signature, now
        self.state, self.error, self.pixels = PENDING, None, None
        return True

    def settle(self, now: float, settle: float) -> bool:
        """Check a pending frame that has not changed for ``settle`` seconds; returns whether
        it became complete."""
        if self.state != PENDING or now - self.changed < settle:
            return False
        if is_own_output(self.path):
            self.state = OWN
            return False
        try:
            self.pixels = decode_whole(self.path)
        except StackError as exc:
            self.state, self.error = BROKEN, str(exc)
            return False
        self.state = COMPLETE
        return True

    def why_incomplete(self) -> str:
        """What a frame left out of its stack is, in words."""
        if self.state == BROKEN:
            return f"it does not decode ({self.error})"
        return f"it was still changing ({self.signature[0]} bytes so far)"


def decode_whole(path: Path) -> np.ndarray:
    """The one page of a complete frame, as its file stores it (uint8/uint16, RGB or grey).

    Raises:
        StackError: the file does not decode, is a cut JPEG, or holds several pages (a
            multi-page TIFF is a stack of its own: ``stackmff batch`` fuses it).
    """
    with path.open("rb") as handle:
        head = handle.read(3)
        if head == JPEG_MAGIC:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64))
            if JPEG_END not in handle.read().rstrip(b"\0"):
                raise StackError(f"cannot decode {path}: the JPEG has no end marker (cut short)")
    pages = read_image(path).pages
    if len(pages) != 1:
        raise StackError(f"{path} holds {len(pages)} pages: a frame is one image")
    return pages[0]


def scan(root: Path, skip: set[str]) -> Iterator[tuple[Path, str, tuple[int, int]]]:
    """Every candidate frame under ``root``: ``(path, folder, (size, mtime_ns))``. Hidden
    files and folders, non-images (our temporaries among them) and the real paths in ``skip``
    (OUTDIR inside the watched folder, the preview) are passed over; links to folders are
    not followed."""
    names = {os.path.basename(p) for p in skip}
    for folder, subfolders, files in os.walk(root):
        here = Path(folder)
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".")
                               and os.path.realpath(here / d) not in skip)
        relative = here.relative_to(root).as_posix()
        for name in sorted(files, key=lambda n: natural_key(Path(n))):
            path = here / name
            if name.startswith(".") or not is_image_path(path) or (
                    name in names and os.path.realpath(path) in skip):
                continue
            try:
                info = path.stat()
            except OSError:  # removed between the listing and now
                continue
            if os.path.isfile(path):
                yield path, "" if relative == "." else relative, (info.st_size,
                                                                   info.st_mtime_ns)
