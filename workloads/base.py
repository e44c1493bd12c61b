"""The workload contract: what client processes do next, what they read at the end, and how it is checked.

A workload is a generator of operation dicts (`f`, `key`, `value`) plus the
checkers its history needs. The run loop knows no concrete workload: it asks
`next_op()` for each client call, feeds every outcome back with `completed()`,
issues `final_ops()` after healing, and hands the client operations to
`check()`.
"""

from __future__ import annotations

from typing import Any, Protocol

from history.operation import Operation


class Workload(Protocol):
    name: str

    def next_op(self) -> dict[str, Any]:
        """The next client operation: {"f", "key", "value"}."""
        ...

    def completed(self, op: dict[str, Any], outcome: dict[str, Any]) -> None:
        """Feedback: the outcome ({"type", "value", ...}) of an operation from next_op()."""
        ...

    def final_ops(self) -> list[dict[str, Any]]:
        """Operations to issue after the heal: reads of everything written."""
        ...

    def check(self, ops: list[Operation], time_limit: float | None = None) -> dict[str, dict[str, Any]]:
        """Checker name -> result dict with `valid` in true | false | "unknown"."""
        ...


def make_workload(name: str, seed: int, **options: Any) -> Workload:
    """The workload called `name`, its random choices drawn from `seed`."""
    if name == "register":
        from workloads.register import RegisterWorkload

        return RegisterWorkload(seed=seed, **options)
    if name == "set":
        from workloads.set import SetWorkload

        return SetWorkload(seed=seed)
    raise ValueError(f"unknown workload {name!r}")
