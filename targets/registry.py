"""Target plugins by name: the one place that maps a spec's `target:` to a plugin."""

from __future__ import annotations

import importlib

from targets.base import Target

# name -> "module:Class"; imported on demand so a broken adapter only breaks its own runs.
TARGETS: dict[str, str] = {
    "raftkv": "targets.raftkv.plugin:RaftKV",
}


def target_names() -> list[str]:
    return sorted(TARGETS)


def get_target(name: str) -> Target:
    """The plugin called name; KeyError (with the known names) when there is none."""
    try:
        module_name, _, cls = TARGETS[name].partition(":")
    except KeyError:
        raise KeyError(f"unknown target {name!r}; known: {', '.join(target_names())}") from None
    return getattr(importlib.import_module(module_name), cls)()
