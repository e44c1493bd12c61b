"""Operation: one invoke paired with its completion, the unit every checker reads.

The history file (DESIGN.md) is a stream of events; `history.events` pairs
them into operations. Checkers never see raw events, so an importer for another
tool's format only has to produce these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["ok", "fail", "info"]

# An `info` operation may take effect at any point after its call, so for
# linearizability its return is the end of time.
END_OF_TIME = float("inf")


class _UnknownRead:
    """The output of a read that completed but whose value nobody knows.

    Distinct from None, which is a read that saw nothing (an absent key): in
    our JSON Lines history a completion says so with `"unknown": true`, and
    Knossos's register models read every nil read this way. Every model lets
    such a read match any state. One instance, so `is` compares it."""

    _instance: _UnknownRead | None = None

    def __new__(cls) -> _UnknownRead:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "unknown"

    def __reduce__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _UnknownRead()


def observed(op: Operation) -> bool:
    """Did this op complete with an output we know? (ok, and not UNKNOWN)"""
    return op.status == "ok" and op.output is not UNKNOWN


@dataclass(frozen=True, slots=True)
class Operation:
    """A client operation from its invocation to its outcome.

    `value` is what the client asked for (a write's value, a cas's [from, to]);
    `output` is what it got back (a read's value). `ret` is `END_OF_TIME` for
    an operation whose outcome is unknown (`info`) or that never completed.
    `output` is UNKNOWN for an ok read whose value is not known.
    `index` is the history index of the invoke event, so evidence can point
    back into the file.
    """

    index: int
    process: Any
    f: str
    value: Any
    output: Any
    call: float
    ret: float
    status: Status
    key: Any = None
    node: str | None = None
    complete_index: int | None = None
