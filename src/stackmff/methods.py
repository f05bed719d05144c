"""The one registry of fusion methods: the network and the classical methods alike.

A method is prepared once (``prepare(**options)``: the network loads its weights there) and
the prepared fuser then fuses any number of stacks. Each entry declares its options as a
table (:mod:`stackmff.option_table`): an option that a method would ignore is refused, every
value is checked by its option, and the command line and napari offer what the tables say.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from stackmff.errors import StackError
from stackmff.option_table import Option, OptionTable, merged_tables
from stackmff.result import FusionResult

Fuser = Callable[[np.ndarray], FusionResult]

# the modules whose import registers the built-in methods, in listing order
BUILTIN_MODULES = ("stackmff.fusion.network_method", "stackmff.classical")


@dataclass(frozen=True)
class FusionMethod:
    """A named method.

    Attributes:
        name: what ``--method`` takes.
        summary: one line for ``stackmff methods``.
        prepare: ``prepare(**options) -> fuser``; the fuser takes float32 ``(L, H, W[, 3])``
            in [0, 1] and returns a :class:`FusionResult`.
        options: the keyword options ``prepare`` accepts, as a table of :class:`Option`
            (a plain tuple is made one).
        check: what the table cannot say, after each value passed its option's check: rules
            between options, files that must exist (raises :class:`StackError`).
        confidence: whether its results carry a confidence map.
        selects: whether every fused pixel is the input pixel its focus map names, so that the
            map can be edited and gathered again, and the channels of a microscopy image are
            gathered with the focus channel's map (otherwise the method runs per channel). A
            function of the options where they decide it (the network's ``blend``).
        rank: listing order (the network first, then the classical methods).
        float_copy: whether it converts the whole stack to float32 (counted in the memory
            check before decoding; the network and depthmap convert a tile or a layer at a
            time).
    """

    name: str
    summary: str
    prepare: Callable[..., Fuser]
    options: OptionTable = field(default_factory=OptionTable)
    check: Callable[..., None] = lambda **options: None
    confidence: bool = True
    selects: bool | Callable[..., bool] = True
    rank: int = 1
    float_copy: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", OptionTable(self.options))

    def copies_pixels(self, **options) -> bool:
        """Whether, with these options, every fused pixel is the input pixel its map names."""
        return self.selects(**options) if callable(self.selects) else self.selects

    def check_options(self, **options) -> None:
        """Refuse options this method does not take, then check each value by its option,
        then what the method checks itself."""
        unknown = sorted(set(options) - set(self.options.names))
        if unknown:
            names = self.options.names
            taken = f" (it takes: {', '.join(sorted(names))})" if names else ""
            raise StackError(f"method {self.name!r} does not take the option(s) "
                             f"{', '.join(unknown)}{taken}")
        self.options.check_values(**options)
        self.check(**options)


_METHODS: dict[str, FusionMethod] = {}


def add_method(method: FusionMethod) -> FusionMethod:
    if method.name in _METHODS:
        raise ValueError(f"fusion method {method.name!r} registered twice")
    _METHODS[method.name] = method
    return method


def register(name: str, summary: str, confidence: bool = True,
             selects: bool = True, float_copy: bool = True) -> Callable[[Fuser], Fuser]:
    """Decorator for a method without options: the function itself is the fuser."""

    def add(function: Fuser) -> Fuser:
        add_method(FusionMethod(name, summary, prepare=lambda: function, confidence=confidence,
                                selects=selects, float_copy=float_copy))
        return function

    return add


def _load_builtins() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


def get_method(name: str) -> FusionMethod:
    """Look a method up by name; raises :class:`StackError` naming the known ones."""
    _load_builtins()
    try:
        return _METHODS[name]
    except KeyError:
        known = ", ".join(_METHODS)
        raise StackError(f"unknown fusion method {name!r}; known methods: {known}") from None


def list_methods() -> list[FusionMethod]:
    """All registered methods: the network first, then the classical ones."""
    _load_builtins()
    return sorted(_METHODS.values(), key=lambda m: m.rank)


def all_options() -> OptionTable:
    """Every option any method takes, each once (see :func:`merged_tables`): what the command
    line offers, and the defaults a front end shows."""
    return merged_tables(method.options for method in list_methods())


def methods_taking(name: str) -> list[str]:
    """The names of the methods that take the option ``name``."""
    return [method.name for method in list_methods() if name in method.options]


__all__ = ["BUILTIN_MODULES", "Fuser", "FusionMethod", "Option", "OptionTable", "add_method",
           "all_options", "get_method", "list_methods", "methods_taking", "register"]
