"""Several checkers as one: run each over the same history, combine their verdicts; `check_history` for a run.

The combination is Jepsen's `compose`: False if any checker found an anomaly,
else "unknown" if any could not decide, else True.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from checkers.registry import DEFAULT_CHECKERS, make_checker
from checkers.stats import StatsChecker
from checkers.verdict import Checker, CheckInput, Verdict, combine
from history.events import NEMESIS, OBSERVER, History, InvalidHistory, event_to_dict, read_history


class Composite:
    """A `Checker` of checkers; its verdict's details hold each member's verdict."""

    name = "composite"

    def __init__(self, members: Iterable[Checker]):
        self.members = list(members)

    def verdicts(self, history: CheckInput) -> list[Verdict]:
        return [c.check(history) for c in self.members]

    def check(self, history: CheckInput) -> Verdict:
        verdicts = self.verdicts(history)
        return Verdict(self.name, combine(verdicts), tuple(a for v in verdicts for a in v.anomalies),
                       details={v.checker: v.to_dict() for v in verdicts})


def run_checkers(declared: Any, extra: Sequence[str] = ()) -> Composite:
    """The checkers of a run: the defaults (split-brain), what the workload declares (anything with
    `checkers()`, or a list of Checkers), `extra` checker names from the spec, and the statistics."""
    own = list(declared.checkers()) if hasattr(declared, "checkers") else list(declared)
    return Composite([*(make_checker(n) for n in DEFAULT_CHECKERS), *own, *(make_checker(n) for n in extra),
                      StatsChecker()])


def check_input(history: History, time_limit: float | None = None,
                fault_facts: Callable[[str, Any], dict | None] | None = None) -> CheckInput:
    # The split-brain checker reads observer and nemesis events only; the client ops come
    # paired. Handing it the rest would be most of its time (1.8M events in an hour's run).
    events = [event_to_dict(e) for e in history.events if e.process in (OBSERVER, NEMESIS)]
    return CheckInput(history.client_operations(), events, time_limit, fault_facts)


def check_history(history_path: Path, declared: Any, key_time_limit: float | None = 30.0,
                  history: History | None = None, extra: Sequence[str] = (),
                  fault_facts: Callable[[str, Any], dict | None] | None = None) -> dict[str, Any]:
    """Every checker the run needs over its history: {"checkers": {name: verdict dict}, "valid", "stats"}.

    `declared`: the workload (its `checkers()`) or a list of Checkers; `history`: the file
    already read and validated, so a caller that renders the report afterwards reads it once."""
    if history is None:
        try:
            history = read_history(history_path)
        except InvalidHistory as e:
            return {"valid": "unknown", "checkers": {}, "history_error": str(e)}
    verdicts = run_checkers(declared, extra).verdicts(check_input(history, key_time_limit, fault_facts))
    # The statistics judge nothing: results.json keeps them apart, as "stats", where readers look.
    checkers = {v.checker: v.to_dict() for v in verdicts if v.checker != StatsChecker.name}
    stats = next((dict(v.details) for v in verdicts if v.checker == StatsChecker.name), {})
    return {"valid": combine(verdicts), "checkers": checkers, "stats": stats}
