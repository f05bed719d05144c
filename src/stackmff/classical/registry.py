"""One registry of fusion methods, so the CLI, benchmarks and tests can list them all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from stackmff.result import FusionResult

FuseFunction = Callable[[np.ndarray], FusionResult]


@dataclass(frozen=True)
class FusionMethod:
    """A named method: ``fuse(layers)`` takes float32 ``(L, H, W[, 3])`` in [0, 1]."""

    name: str
    summary: str
    fuse: FuseFunction


_METHODS: dict[str, FusionMethod] = {}


def register(name: str, summary: str) -> Callable[[FuseFunction], FuseFunction]:
    """Decorator that adds a fusion function to the registry under ``name``."""

    def add(function: FuseFunction) -> FuseFunction:
        if name in _METHODS:
            raise ValueError(f"fusion method {name!r} registered twice")
        _METHODS[name] = FusionMethod(name=name, summary=summary, fuse=function)
        return function

    return add


def get_method(name: str) -> FusionMethod:
    """Look a method up by name; raises ``ValueError`` naming the known ones."""
    try:
        return _METHODS[name]
    except KeyError:
        known = ", ".join(sorted(_METHODS))
        raise ValueError(f"unknown fusion method {name!r}; known methods: {known}") from None


def list_methods() -> list[FusionMethod]:
    """All registered methods, in registration order."""
    return list(_METHODS.values())
