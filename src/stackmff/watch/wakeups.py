"""When the watch looks at its folder again: when the file system reports a change
(watchdog), or every few seconds (``--poll``, for network shares, where change events do not
come).

Either way the look itself lists the folder, so a missed or merged event costs at most the
time until the next look (:data:`RESCAN` seconds with watchdog). watchdog is imported here
only, when a watch starts without ``--poll``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from stackmff.errors import StackError

RESCAN = 5.0           # with watchdog: the longest wait without a look
INSTALL = "pip install 'stackmff[watch]'"


class Polling:
    """A look every ``interval`` seconds (sooner when the watch has a deadline)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval

    def __enter__(self) -> Polling:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def wait(self, timeout: float | None) -> None:
        time.sleep(self.interval if timeout is None else max(0.0, min(timeout, self.interval)))


class Events:
    """A look after every change watchdog reports under ``folder`` (sooner at a deadline, and
    at least every :data:`RESCAN` seconds)."""

    def __init__(self, folder: Path) -> None:
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:
            raise StackError(f"watching a folder for changes needs watchdog: {INSTALL}, or "
                             "give --poll SECONDS") from None
        self.changed = threading.Event()
        changed = self.changed

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event) -> None:
                changed.set()

        self.observer = Observer()
        self.observer.daemon = True
        self.handler, self.folder = Handler(), folder

    def __enter__(self) -> Events:
        try:
            self.observer.schedule(self.handler, str(self.folder), recursive=True)
            self.observer.start()
        except OSError as exc:  # e.g. the system's limit of watches reached
            raise StackError(f"cannot watch {self.folder}: {exc.strerror or exc}; give "
                             "--poll SECONDS") from None
        return self

    def __exit__(self, *exc) -> None:
        self.observer.stop()
        self.observer.join(timeout=5)

    def wait(self, timeout: float | None) -> None:
        limit = RESCAN if timeout is None else max(0.0, min(timeout, RESCAN))
        if self.changed.wait(limit):
            self.changed.clear()
