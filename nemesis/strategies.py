"""Hypothesis strategies for fault schedules: which faults, on which nodes, when and for how long.

A schedule drawn here is a plain `list[ScheduledOp]`, the same value the seeded
schedule makes, so the run loop plays it unchanged. It is built from small
strategies (`faults` of one family each, laid one after another with a gap),
so when a property fails hypothesis shrinks it towards fewer faults, fewer
nodes, shorter faults and earlier starts: a handful of faults that still breaks
the target. `schedule_to_yaml` / `schedule_from_yaml` write and read a schedule,
so a shrunk one can be replayed by hand or kept as a regression test.

    from hypothesis import given, settings
    from nemesis.strategies import fault_schedules

    @given(fault_schedules(["n1", "n2", "n3"], families=("partition", "kill")))
    def test_raftkv_survives(schedule): ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from hypothesis import strategies as st

from nemesis.registry import families as registered
from nemesis.registry import family as family_named
from nemesis.schedule import ScheduledOp, schedule_entries

# Families a drawn schedule uses unless told; netem families need a kernel this host may lack.
FAMILIES = ("partition", "kill", "pause", "clock", "loss")


def known() -> tuple[str, ...]:
    """Every family with a strategy (`FaultFamily.strategy`): vote-crash, say, needs a target failpoint
    and takes seconds a time, so it is drawn only on request."""
    return tuple(name for name, fam in registered().items() if fam.strategy(["n1", "n2", "n3"]) is not None)


KNOWN = known()


@dataclass(frozen=True)
class Fault:
    """One fault: begin `gap` seconds after the previous fault ended, last `duration` seconds."""

    family: str
    value: Any  # the start op's value
    gap: float
    duration: float

    def ops(self, at: float) -> list[ScheduledOp]:
        fam = family_named(self.family)
        value = dict(self.value) if isinstance(self.value, dict) else self.value
        reserved = tuple(value["nodes"]) if isinstance(value, dict) and "nodes" in value else ()
        end = round(at + self.duration, 3)
        return [ScheduledOp(round(at, 3), self.family, fam.start_op, value),
                ScheduledOp(end, self.family, fam.stop_op, fam.stop_value(reserved))]


def fault_values(family: str, nodes: list[str]) -> st.SearchStrategy[Any]:
    """The start op's value for one fault of `family` on `nodes` (node ids, or "leader")."""
    strategy = family_named(family).strategy(nodes) if family in known() else None
    if strategy is None:
        raise ValueError(f"no strategy for fault family {family!r}; known: {', '.join(known())}")
    return strategy


def faults(nodes: list[str], families: tuple[str, ...] = FAMILIES, max_duration: float = 5.0,
           max_gap: float = 3.0) -> st.SearchStrategy[Fault]:
    """One fault of one of `families`, with how long before it starts and how long it lasts."""
    # one_of rather than a flatmap over the family: it shrinks, and a fault can be deleted whole.
    return st.one_of([st.builds(
        Fault,
        family=st.just(fam),
        value=fault_values(fam, nodes),
        # Tenths of a second as integers: they shrink to the smallest, not to a round float.
        gap=st.integers(0, int(max_gap * 10)).map(lambda x: x / 10),
        duration=st.integers(5, max(5, int(max_duration * 10))).map(lambda x: x / 10),
    ) for fam in families])


def schedule_of(fault_list: list[Fault], time_limit: float | None = None) -> list[ScheduledOp]:
    """The faults one after another as scheduled ops; faults that would begin after the time limit are dropped
    and one still active at it ends there."""
    plan: list[ScheduledOp] = []
    at = 0.0
    for fault in fault_list:
        at += fault.gap
        if time_limit is not None and at >= time_limit:
            break
        start, stop = fault.ops(at)
        if time_limit is not None and stop.at > time_limit:
            stop = ScheduledOp(time_limit, stop.family, stop.f, stop.value)
        plan += [start, stop]
        at = stop.at
    return plan


def fault_schedules(nodes: list[str], families: tuple[str, ...] = FAMILIES, min_faults: int = 1,
                    max_faults: int = 6, max_duration: float = 5.0, max_gap: float = 3.0,
                    time_limit: float | None = None) -> st.SearchStrategy[list[ScheduledOp]]:
    """Schedules of `min_faults`..`max_faults` faults of `families` on `nodes`, in time order; shrinks towards
    fewer, shorter, earlier faults on fewer nodes."""
    unknown = [f for f in families if f not in known()]
    if unknown:
        raise ValueError(f"no strategy for fault family {unknown[0]!r}; known: {', '.join(known())}")
    return st.lists(faults(nodes, tuple(families), max_duration, max_gap), min_size=min_faults,
                    max_size=max_faults).map(lambda fs: schedule_of(fs, time_limit))


def schedule_length(schedule: list[ScheduledOp]) -> float:
    """Seconds from the fault phase's start to the last op: a run's time limit must cover it."""
    return max((op.at for op in schedule), default=0.0)


def describe(schedule: list[ScheduledOp]) -> str:
    """One line per op, for a failure message."""
    return "\n".join(f"  {op.at:7.2f}s {op.f} {op.value if op.value is not None else ''}".rstrip() for op in schedule)


def schedule_to_yaml(schedule: list[ScheduledOp]) -> str:
    return yaml.safe_dump(schedule_entries(schedule), sort_keys=False)


def schedule_from_yaml(text: str) -> list[ScheduledOp]:
    return [ScheduledOp(float(d["at"]), d["family"], d["f"], d.get("value")) for d in yaml.safe_load(text) or []]
