"""The workload contract: what client processes do next, what they read at the end, and which checkers judge it.

A workload is a generator of operation dicts (`f`, `key`, `value`) plus the
checkers its history needs. The run loop knows no concrete workload: it asks
`next_op()` for each client call, feeds every outcome back with `completed()`,
issues `final_ops()` after healing, and the run checks the history with the
default checkers (split-brain, stats) plus the workload's `checkers()`.

Workloads are plugins: built in here, installed as entry points in the group
`splitbrain.workloads`, registered with `WORKLOADS.register`, or named
"package.module:Class". A workload class takes `seed` and its own options.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol

from checkers.verdict import Checker
from plugins.registry import Registry


class Workload(Protocol):
    name: str
    model: str  # what its history is checked against ("kv", "set"): recorded in results.json

    def next_op(self) -> dict[str, Any]:
        """The next client operation: {"f", "key", "value"}."""
        ...

    def completed(self, op: dict[str, Any], outcome: dict[str, Any]) -> None:
        """Feedback: the outcome ({"type", "value", ...}) of an operation from next_op()."""
        ...

    def final_ops(self) -> list[dict[str, Any]]:
        """Operations to issue after the heal: reads of everything written."""
        ...

    def checkers(self) -> list[Checker]:
        """The checkers this workload's history needs, besides the defaults."""
        ...


WORKLOADS: Registry[Callable[..., Workload]] = Registry("workload", {
    "register": "workloads.register:RegisterWorkload",
    "set": "workloads.set:SetWorkload",
    "election": "workloads.election:ElectionWorkload",
}, group="splitbrain.workloads")


def make_workload(name: str, seed: int, **options: Any) -> Workload:
    """The workload called `name`, its random choices drawn from `seed`; PluginError if unknown.

    `options` are what a spec offers (keys, ops_per_key, ...): each workload takes those its
    constructor names and ignores the rest, so the harness never asks which workload it is."""
    cls = WORKLOADS.load(name)
    params = inspect.signature(cls).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        options = {k: v for k, v in options.items() if k in params}
    return cls(seed=seed, **options)
