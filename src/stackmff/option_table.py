"""A method's options as data: each option says what values it takes, its default and how it
is described, and everything else is derived from that: the check of a value (with its one-line
error), the command-line flags and the napari controls.

Only a rule between options, or one that needs the outside world (that a file exists), is left
to the method's own check.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stackmff.errors import StackError

TYPE_WORDS = {bool: "True or False", int: "an integer", float: "a number", str: "text",
              Path: "a path", tuple: "a list of numbers"}


@dataclass(frozen=True)
class Option:
    """One keyword option of a method.

    Attributes:
        name: the keyword that :func:`stackmff.prepare_method` takes.
        type: ``bool``, ``int``, ``float``, ``str``, ``Path`` (a ``str`` or path-like) or
            ``tuple`` (of numbers; written as a comma list on the command line).
        default: the value when the option is not given (``None``: the method decides, e.g.
            the shipped weights; then ``None`` is also a value one may give).
        help: one sentence for ``--help`` and the napari tooltip.
        choices: the only values taken (``str`` options).
        low, high: the least and greatest value taken (numbers), where bounded.
        words: values beyond the type, as ``(how the command line writes it, value)`` pairs,
            e.g. ``("auto", "auto")`` and ``("0", None)`` for the tile size.
        flag: the command-line flag; ``""``: ``--`` and the name with dashes; ``None``: none.
            A ``bool`` option's flag is a switch that sets the opposite of its default.
        metavar: the placeholder ``--help`` shows for the value.
        label: how error messages name it; ``""``: the name with spaces.
    """

    name: str
    type: type
    default: object
    help: str
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    words: tuple[tuple[str, object], ...] = ()
    flag: str | None = ""
    metavar: str | None = None
    label: str = ""

    @property
    def flag_name(self) -> str | None:
        """The command-line flag, or ``None`` where it has none."""
        if self.flag is None:
            return None
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def noun(self) -> str:
        return self.label or self.name.replace("_", " ")

    def rule(self, written: bool = False) -> str:
        """What the option takes, e.g. ``"an integer from 0 to 1024"``; ``written``: as the
        command line writes its special values (``0`` instead of ``None``)."""
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        base = "numbers separated by commas" if written and self.type is tuple else \
            TYPE_WORDS[self.type]
        if self.low is not None and self.high is not None:
            base += f" from {self.low:g} to {self.high:g}"
        elif self.low is not None:
            base += f" of at least {self.low:g}"
        elif self.high is not None:
            base += f" of at most {self.high:g}"
        specials = [word if written else repr(value) for word, value in self.words]
        return _alternatives([*specials, base])

    def fits(self, value) -> bool:
        """Whether ``value`` is one this option takes."""
        if any(type(value) is type(special) and value == special for _, special in self.words):
            return True
        if value is None:
            return self.default is None
        if not _of_type(value, self.type):
            return False
        if self.choices:
            return value in self.choices
        return ((self.low is None or value >= self.low)
                and (self.high is None or value <= self.high))

    def check(self, value) -> None:
        """Refuse a value this option does not take, in one line naming the option."""
        if not self.fits(value):
            raise StackError(f"{self.noun} must be {self.rule()}, got {value!r}")


class OptionTable(tuple):
    """A method's options in the order front ends show them. ``name in table`` asks for an
    option by its name, as the names alone did before the options were data."""

    def __new__(cls, options=()):
        table = super().__new__(cls, options)
        names = [option.name for option in table]
        if len(set(names)) != len(names):
            raise ValueError(f"an option is declared twice: {names}")
        return table

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(option.name for option in self)

    def __contains__(self, item) -> bool:
        if isinstance(item, str):
            return item in self.names
        return super().__contains__(item)

    def get(self, name: str) -> Option | None:
        """The option called ``name``, or ``None``."""
        return next((option for option in self if option.name == name), None)

    def check_values(self, **values) -> None:
        """Check each value given by its option (in table order, so the first error is
        always the same one); every name must be in the table."""
        for option in self:
            if option.name in values:
                option.check(values[option.name])

    def defaults(self) -> dict:
        return {option.name: option.default for option in self}


def merged_tables(tables) -> OptionTable:
    """One table with every option of ``tables``: each in the place its own table gives it
    (after the option it follows there). An option declared twice must be declared alike."""
    merged: list[Option] = []
    for table in tables:
        previous = None
        for option in table:
            known = next((o for o in merged if o.name == option.name), None)
            if known is None:
                at = 0 if previous is None else merged.index(previous) + 1
                merged.insert(at, option)
                known = option
            elif known != option:
                raise ValueError(f"option {option.name!r} is declared differently by two methods")
            previous = known
    return OptionTable(merged)


def _of_type(value, kind: type) -> bool:
    if isinstance(value, bool) or kind is bool:
        return kind is bool and isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float))
    if kind is Path:
        return isinstance(value, (str, os.PathLike))
    if kind is tuple:
        return isinstance(value, (tuple, list)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    return isinstance(value, kind)


def _alternatives(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]
