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


@dataclass(frozen=True, slots=True)
class Operation:
    """A client operation from its invocation to its outcome.

    `value` is what the client asked for (a write's value, a cas's [from, to]);
    `output` is what it got back (a read's value). `ret` is `END_OF_TIME` for
    an operation whose outcome is unknown (`info`) or that never completed.
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
