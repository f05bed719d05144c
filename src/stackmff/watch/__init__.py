"""``stackmff watch``: fuse each focus stack while the camera shoots, as its last frame lands
in a folder, through the batch machinery (the same outputs, report and resume), with a live
preview that grows frame by frame.

The modules load on first use (the command line's options read the defaults of
:mod:`stackmff.watch.grouping` without the rest); watchdog (the ``watch`` extra) is imported
only when a watch starts without ``--poll``.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"Rules": "stackmff.watch.grouping", "WatchSummary": "stackmff.watch.run",
            "watch_folder": "stackmff.watch.run"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'stackmff.watch' has no attribute {name!r}")
