"""The fault schedule: a seeded, deterministic plan of nemesis operations over a run, or one written by hand.

Every `interval` seconds the schedule either starts a fault of a family that is
not active or stops one that is, so faults of different families overlap and
mix. Each family draws its own start (`FaultFamily.draw`); some kills are
bounces: the node restarts within a second. The same seed, faults, nodes,
interval and time limit always give the same plan; only choices that depend on
the running cluster ("the current leader") are left as the symbolic node
"leader" for the run loop to resolve. At the time limit every fault still
active is stopped.

A schedule written by hand (`parse_schedule`) is a list of entries, each a
`ScheduledOp` (e.g. from `PARTITION.start(at=1.0, grudge="halves")`) or a dict:

    {"at": 1.0, "fault": "partition", "grudge": "isolate-leader", "duration": 2.0}  # start, and stop 2 s later
    {"at": 4.0, "fault": "kill", "nodes": ["leader"]}                                # the family's start op
    {"at": 5.0, "fault": "kill", "stop": True}                                       # its stop op
    {"at": 6.0, "fault": "clock", "f": "strobe-clock", "value": {"nodes": ["n1"], "delta_ms": 200}}

(docs/fault-families.md). A bad entry is one `ScheduleError` line naming it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from nemesis.errors import NemesisOpError
from nemesis.family import LEADER, ScheduledOp  # noqa: F401  (LEADER: the symbolic node a schedule may name)
from nemesis.grudges import GRUDGES  # noqa: F401  (the shapes the partition nemesis understands)
from nemesis.registry import family
from plugins.registry import PluginError

BOUNCE_DELAYS = (0.1, 0.25, 0.5, 1.0)


class ScheduleError(ValueError):
    """A hand-written schedule entry that cannot be played: the message is one line naming it."""


@dataclass
class _Active:
    family: str
    nodes: tuple[str, ...] = field(default_factory=tuple)


def make_schedule(
    seed: int,
    faults: list[str] | tuple[str, ...],
    nodes: list[str],
    interval: float,
    time_limit: float,
    target: Any = None,
) -> list[ScheduledOp]:
    """The plan of nemesis operations for one run, in time order; deterministic in its arguments.
    `target`: ops it cannot do (`FaultFamily.refuses`) are not drawn."""
    fams = {}
    for name in faults:
        try:
            fams[name] = family(name)
        except PluginError:
            continue  # Nemesis.problems() refuses it before the run
    faults = [f for f in faults if f in fams]
    if not faults or interval <= 0 or not nodes:
        return []
    rng = random.Random(f"{seed}:schedule")
    plan: list[ScheduledOp] = []
    active: list[_Active] = []
    at = interval
    while at < time_limit:
        inactive = [f for f in faults if f not in {a.family for a in active}]
        stop = active and (not inactive or rng.random() < 0.5 or len(active) >= 2)
        if stop:
            victim = active.pop(0)
            fam = fams[victim.family]
            plan.append(ScheduledOp(at, victim.family, fam.stop_op, fam.stop_value(victim.nodes)))
        else:
            name = rng.choice(inactive)
            fam = fams[name]
            busy = {n for a in active for n in a.nodes}
            draw = fam.draw(rng, nodes, busy, target)
            if draw is None:  # nothing it could hit now
                at += interval
                continue
            plan.append(ScheduledOp(at, name, draw.f, draw.value))
            if fam.bounce_chance and rng.random() < fam.bounce_chance:
                # A bounce: restart within a second, so nodes crash and come back while
                # an election is still going on (where forgotten votes and lost
                # state show up), not only between settled terms.
                back = min(rng.choice(BOUNCE_DELAYS), interval / 2)
                plan.append(ScheduledOp(round(at + back, 3), name, fam.stop_op, fam.stop_value(draw.reserved),
                                        follows=True))
            else:
                active.append(_Active(name, draw.reserved))
        at += interval
    for a in active:
        fam = fams[a.family]
        plan.append(ScheduledOp(time_limit, a.family, fam.stop_op, fam.stop_value(a.nodes)))
    return plan


def schedule_entries(schedule: list[ScheduledOp]) -> list[dict[str, Any]]:
    """The ops as hand-written entries (parse_schedule reads them back): what a run's schedule.yaml holds."""
    return [{"at": op.at, "family": op.family, "f": op.f, "value": op.value} for op in schedule]


_ENTRY_KEYS = {"at", "fault", "family", "f", "value", "stop", "duration"}


def parse_schedule(entries: Any, node_ids: list[str] | None = None, target: Any = None) -> list[ScheduledOp]:
    """A hand-written schedule (ScheduledOps and/or dicts, see the module docstring) as ScheduledOps in time
    order, each op validated by its family (against node_ids, if given) and checked against what the target
    can do; ScheduleError naming the first bad entry."""
    if not isinstance(entries, (list, tuple)):
        raise ScheduleError(f"a schedule is a list of entries, got {type(entries).__name__}")
    out: list[ScheduledOp] = []
    for i, entry in enumerate(entries, start=1):
        try:
            ops = [entry] if isinstance(entry, ScheduledOp) else _from_dict(entry)
            for op in ops:
                fam = family(op.family)
                if op.f not in fam.ops:
                    raise ScheduleError(f"fault family {op.family} has no op {op.f!r}; its ops: {', '.join(fam.ops)}")
                if node_ids is not None:
                    fam.validate(op.op(), node_ids)
                why = fam.refuses(op.f, target) if target is not None else None
                if why:
                    raise ScheduleError(why)
            out += ops
        except (ScheduleError, NemesisOpError, PluginError) as e:
            raise ScheduleError(f"schedule entry {i} ({entry!r}): {e}") from None
    return sorted(out, key=lambda op: op.at)


def _from_dict(entry: Any) -> list[ScheduledOp]:
    if not isinstance(entry, dict):
        raise ScheduleError("an entry is a ScheduledOp or a dict with 'at' and 'fault'")
    name = entry.get("fault", entry.get("family"))
    if not isinstance(name, str):
        raise ScheduleError("needs 'fault': the name of a fault family")
    at = entry.get("at")
    if isinstance(at, bool) or not isinstance(at, (int, float)) or at < 0:
        raise ScheduleError(f"'at' must be a number of seconds >= 0, got {at!r}")
    fam = family(name)
    fields = {k: v for k, v in entry.items() if k not in _ENTRY_KEYS}
    if "value" in entry and fields:
        raise ScheduleError(f"give the op's value either as 'value' or as fields, not both ({', '.join(fields)})")
    value = entry.get("value", fields or None)
    if entry.get("stop"):
        return [ScheduledOp(float(at), name, fam.stop_op, value)]
    start = ScheduledOp(float(at), name, entry.get("f") or fam.start_op, value)
    duration = entry.get("duration")
    if duration is None:
        return [start]
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration < 0:
        raise ScheduleError(f"'duration' must be a number of seconds >= 0, got {duration!r}")
    return [start, ScheduledOp(round(at + duration, 3), name, fam.stop_op, None)]
