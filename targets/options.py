"""A target's spec `options:` checked before a run: the parts every target's settings parser shares.

A target parses its own options into a frozen dataclass and raises
SettingsError (one line for the user) for the first one that is wrong;
`refusals` turns that into the optional `unsupported_options` answer of the
target contract (targets/base.py), so a misspelt option is one line and exit 2
before anything starts. Used by targets/etcd and targets/zookeeper.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


class SettingsError(ValueError):
    """A setting the target cannot run with: one line for the user."""


def unknown(target: str, given: Iterable[str], known: Iterable[str]) -> None:
    """SettingsError for the first name of given that is not known, with the closest known name as a hint."""
    known = list(known)
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SettingsError(f"target {target} has no option {name!r}{hint}; known: {', '.join(known)}")


def positive_int(name: str, value: Any, unit: str) -> int:
    """value as a whole number above 0 (not a bool), or SettingsError naming the option and its unit."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SettingsError(f"{name}: expected a whole number of {unit} above 0, got {value!r}")
    return value


def one_of(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise SettingsError(f"{name}: expected {' or '.join(choices)}, got {value!r}")
    return value


def refusals(parse: Callable[[Mapping[str, Any]], object], settings: Mapping[str, Any]) -> list[str]:
    """The target contract's unsupported_options: [] when parse accepts settings, else its one line."""
    try:
        parse(settings)
    except SettingsError as e:
        return [str(e)]
    return []
