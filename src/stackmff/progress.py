"""Progress bars that show on a terminal and stay quiet otherwise (logs, CI, pipes)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, total: int | None = None,
             unit: str = "layer") -> Iterator[T]:
    """Iterate over ``items`` with a progress bar (count, rate, time left) on stderr when
    stderr is a terminal."""
    return iter(
        tqdm(items, desc=desc, total=total, leave=False, disable=not sys.stderr.isatty(),
             unit=unit)
    )
