"""Checking a training config's keys: what each key accepts, one section at a time, and reading
the TOML file, so that a typo fails at once with the key's name, not minutes later."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from stackmff.errors import StackError


@dataclass(frozen=True)
class Rule:
    """What one config key accepts: a kind (``int``, ``float``, ``bool``, ``str`` or ``ints``,
    a list of integers), an optional range, allowed strings, and a list length."""

    kind: str
    low: float | None = None
    high: float | None = None
    high_open: bool = False             # the range excludes ``high``
    low_open: bool = False              # the range excludes ``low``
    choices: tuple[str, ...] = ()
    length: int | None = None           # ints: exactly this many (else at least one)
    optional: bool = False              # None (the default) is accepted

    def describe(self) -> str:
        if self.kind == "bool":
            return "true or false"
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        noun = {"int": "an integer", "float": "a number", "str": "a non-empty string",
                "ints": f"a list of {self.length or 'one or more'} integers"}[self.kind]
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{noun} in {left}{_number(self.low)}, {_number(self.high)}{right}"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {_number(self.low)}"
        return noun

    def check(self, where: str, value):
        """``value`` in its canonical type (lists become tuples); raises StackError."""
        if value is None and self.optional:
            return None
        if self.kind == "ints":
            fits = (isinstance(value, list | tuple) and len(value) > 0
                    and len(value) == (self.length or len(value))
                    and all(self._fits(item) for item in value))
        else:
            fits = self._fits(value)
        if not fits:
            raise StackError(f"{where} must be {self.describe()}, got {value!r}")
        if self.kind == "ints":
            return tuple(value)
        return float(value) if self.kind == "float" else value

    def _fits(self, value) -> bool:
        kind = "int" if self.kind == "ints" else self.kind
        if kind == "bool" or isinstance(value, bool):
            return kind == "bool" and isinstance(value, bool)
        if kind == "str":
            return isinstance(value, str) and value != "" and (
                not self.choices or value in self.choices)
        if not isinstance(value, int if kind == "int" else int | float) or not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def at_least(low: int) -> Rule:
    """An integer ``>= low``."""
    return Rule("int", low=low)


def fraction() -> Rule:
    """A number in [0, 1]."""
    return Rule("float", low=0, high=1)


# The top-level key that says what a config trains; a config without it trains the network.
TARGET = Rule("str", choices=("network", "head"))


def config_target(data) -> str:
    """``"network"`` or ``"head"``: the config's top-level ``target`` key, checked."""
    if not isinstance(data, dict):
        raise StackError(f"a training config is a table of sections, got {data!r}")
    return TARGET.check("target", data.get("target", "network"))


def check_sections(data: dict, sections: dict[str, type], target: str) -> None:
    """Every top-level name is ``target`` or one of ``sections``."""
    for name in data:
        if name == "target" or name in sections:
            continue
        listed = ", ".join(f"[{s}]" for s in sections)
        message = f"unknown config section [{name}]; the sections are {listed}"
        if target == "head":
            message += " (target = \"head\")"
        elif name in ("head", "cache"):
            message += "; a config that trains the v3+ head starts with target = \"head\""
        raise StackError(message)


def checked_section(name: str, values, kind: type, rules: dict[str, Rule]) -> dict:
    """The keys of one section (a dataclass ``kind``), each checked against its rule."""
    if not isinstance(values, dict):
        raise StackError(f"[{name}] must be a table of keys, got {values!r}")
    known = [f.name for f in fields(kind)]
    for key in values:
        if key not in known:
            raise StackError(f"[{name}] has no key {key!r}; its keys are {', '.join(known)}")
    return {k: rules[k].check(f"[{name}] {k}", v) if k in rules else v for k, v in values.items()}


def check_schedule(optim) -> None:
    """The cosine schedule falls from ``lr`` to ``min_lr``, never up."""
    if optim.schedule == "cosine" and optim.min_lr > optim.lr:
        raise StackError(f"[optim] min_lr ({optim.min_lr:g}) must not exceed lr "
                         f"({optim.lr:g}) with schedule = 'cosine'")


def read_toml(path: str | Path) -> dict:
    """A TOML file's tables; raises StackError when it cannot be read or parsed."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise StackError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise StackError(f"config {path} is not valid TOML: {exc}") from None
