"""The checkers by name, and reading a run's verdicts back from its results.json.

A checker plugin is a factory (usually its class) that takes no arguments and
returns a `Checker`: built in here, installed as an entry point in the group
`splitbrain.checkers`, registered at run time (`CHECKERS.register`), or named
"package.module:Class". A spec's `checkers:` list names extra ones to run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from checkers.verdict import Checker, Verdict
from plugins.registry import PluginError, Registry

CHECKERS: Registry[Callable[[], Checker]] = Registry("checker", {
    "split-brain": "checkers.split_brain:SplitBrainChecker",
    "linearizability": "checkers.linearizability_checker:LinearizabilityChecker",
    "set": "checkers.sets:SetChecker",
    "mutual-exclusion": "checkers.mutual_exclusion:MutualExclusionChecker",
}, group="splitbrain.checkers")

# Members of every run's checkers, before the workload's own (the statistics come last).
DEFAULT_CHECKERS = ("split-brain",)


def make_checker(name: str) -> Checker:
    """A fresh checker of the plugin called `name`; PluginError (one line) if there is none."""
    return CHECKERS.load(name)()


def read_verdicts(results: Mapping[str, Any]) -> list[Verdict]:
    """The verdicts in a results.json, in its order. A folder written before verdicts carried
    their anomalies has them rebuilt by the checker of that name, if it is known here."""
    out = []
    for name, d in (results.get("checkers") or {}).items():
        if not isinstance(d, Mapping):
            continue
        out.append(Verdict.from_dict(name, d, legacy=_legacy_reader(str(d.get("checker") or name))))
    return out


def _legacy_reader(name: str) -> Callable[[Mapping[str, Any]], Any] | None:
    if name not in CHECKERS.names():  # a name from a file is never imported as "module:attr"
        return None
    try:
        return getattr(CHECKERS.load(name), "anomalies", None)
    except PluginError:
        return None
