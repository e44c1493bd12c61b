"""What a checker says about a history, as data: a Verdict of Anomalies, the Checker contract, and exit codes.

Every checker, built in or a plugin, returns a `Verdict`; everything after
checking (the run summary, results.json, "found at", the suite's JUnit, the
report) reads only these fields, so a new checker needs no change there.
A Verdict is stored in results.json as its checker's own keys (`details`,
kept so old readers still find them) plus the uniform ones: `checker`,
`valid`, `seconds` and `found`, the anomalies. Times are ns on the history's
clock, operations are history indices.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal, Protocol

from history.operation import Operation

Valid = bool | Literal["unknown"]


class ExitCode(IntEnum):
    """What `splitbrain run`, `check` and `suite` exit with."""

    VALID = 0
    ANOMALY = 1
    USAGE = 2  # a user's mistake or an infrastructure error: no verdict
    UNKNOWN = 3


def exit_code_for(valid: Any) -> ExitCode:
    return {True: ExitCode.VALID, False: ExitCode.ANOMALY}.get(valid, ExitCode.UNKNOWN)


@dataclass(frozen=True)
class Anomaly:
    """One thing a checker proved wrong, told in one sentence.

    `start`/`end`: the span of the history it covers; `at`: when the history
    first shows it (defaults to `start`); `operations`: the history indices
    of the client operations involved; `evidence`: plain JSON-able data the
    report draws for this kind (the checker's own shape)."""

    kind: str
    summary: str
    start: float | None = None
    end: float | None = None
    operations: tuple[int, ...] = ()
    nodes: tuple[str, ...] = ()
    evidence: Mapping[str, Any] = field(default_factory=dict)
    at: float | None = None

    @property
    def visible_at(self) -> float | None:
        return self.at if self.at is not None else self.start

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "summary": self.summary, "start": self.start, "end": self.end, "at": self.at,
                "operations": list(self.operations), "nodes": list(self.nodes), "evidence": dict(self.evidence)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Anomaly:
        return cls(kind=str(d.get("kind", "anomaly")), summary=str(d.get("summary") or d.get("kind", "anomaly")),
                   start=d.get("start"), end=d.get("end"), at=d.get("at"),
                   operations=tuple(i for i in d.get("operations") or () if isinstance(i, int)),
                   nodes=tuple(str(n) for n in d.get("nodes") or ()), evidence=dict(d.get("evidence") or {}))


# Keys a Verdict owns in its results.json entry; everything else is the checker's details.
_UNIFORM = ("checker", "valid", "seconds", "found")


@dataclass(frozen=True)
class Verdict:
    """A checker's answer: valid True, False (then `anomalies` says why) or "unknown" (`reason`)."""

    checker: str
    valid: Valid
    anomalies: tuple[Anomaly, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)  # the checker's own data, as today's keys
    seconds: float | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.details)
        if self.reason is not None:
            out.setdefault("reason", self.reason)
        out.update(checker=self.checker, valid=self.valid, seconds=self.seconds,
                   found=[a.to_dict() for a in self.anomalies])
        return out

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any],
                  legacy: Callable[[Mapping[str, Any]], Iterable[Anomaly]] | None = None) -> Verdict:
        """The verdict stored under `name`; a folder written before `found` existed has its
        anomalies rebuilt by `legacy` (the checker's own reading of its keys), when given."""
        valid = d.get("valid")
        valid = valid if isinstance(valid, bool) else "unknown"
        if "found" in d:
            anomalies = tuple(Anomaly.from_dict(a) for a in d.get("found") or () if isinstance(a, Mapping))
        elif legacy is not None and valid is False:
            anomalies = tuple(legacy(d))
        else:
            anomalies = ()
        if valid is False and not anomalies:
            # An anomaly nobody described is still one: the summary and the suite must say so.
            anomalies = (Anomaly("anomaly", f"{name} found an anomaly"),)
        seconds = d.get("seconds")
        return cls(checker=str(d.get("checker") or name), valid=valid, anomalies=anomalies,
                   details={k: v for k, v in d.items() if k not in _UNIFORM},
                   seconds=seconds if isinstance(seconds, (int, float)) else None,
                   reason=d.get("reason") if isinstance(d.get("reason"), str) else None)


def combine(verdicts: Iterable[Any]) -> Valid:
    """False if any checker found an anomaly, else "unknown" if any could not decide, else True.
    Takes Verdicts or their `valid` values."""
    values = [v.valid if isinstance(v, Verdict) else v for v in verdicts]
    if any(v is False for v in values):
        return False
    if any(v is not True for v in values):
        return "unknown"
    return True


@dataclass(frozen=True)
class CheckInput:
    """What a checker reads: the paired client operations, the observer and nemesis
    events (as dicts, the way the split-brain checker reads them), and a bound in
    seconds for searches that can run long (per key, for linearizability)."""

    ops: Sequence[Operation]
    events: Sequence[dict] = ()
    time_limit: float | None = None
    # What a nemesis op did (family, nodes hit, leader hit), for completions that do
    # not say so themselves (histories written before they did). Checkers sit below
    # the nemesis, so the caller hands over the registry's knowledge as a function.
    fault_facts: Callable[[str, Any], dict | None] | None = None


class Checker(Protocol):
    """History in, verdict out. Register a factory of one (a class with no required
    arguments) in `checkers.registry.CHECKERS`, or declare one in a workload's `checkers()`."""

    name: str

    def check(self, history: CheckInput) -> Verdict: ...


def short(v: Any) -> str:
    """A value as a sentence quotes it: at most about 40 characters."""
    if v is None:
        return "nil"
    if type(v) is int:  # the common case, 100,000 times in a report: no json.dumps
        return str(v)
    if isinstance(v, list) and len(v) > 6:
        return "[" + ", ".join(map(short, v[:6])) + f", …{len(v) - 6} more]"
    s = json.dumps(v, separators=(",", ":")) if not isinstance(v, str) else v
    return s if len(s) <= 40 else s[:39] + "…"
