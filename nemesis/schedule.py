"""The fault schedule: a seeded, deterministic plan of nemesis operations over a run.

Every `interval` seconds the schedule either starts a fault of a family that is
not active or stops one that is, so faults of different families overlap and
mix. Some kills are bounces: the node restarts within a second. The same seed, faults, nodes, interval and time limit always give the
same plan; only choices that depend on the running cluster ("the current
leader") are left as the symbolic node "leader" for the run loop to resolve.
At the time limit every fault still active is stopped.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from nemesis.grudges import GRUDGES  # the shapes the partition nemesis understands

# Start and stop operation names per fault family.
FAMILY_OPS: dict[str, tuple[str, str]] = {
    "partition": ("start-partition", "stop-partition"),
    "kill": ("kill", "start"),
    "pause": ("pause", "resume"),
    "clock": ("bump-clock", "reset-clock"),  # the start may also be strobe-clock
    "loss": ("start-loss", "stop-loss"),
    "delay": ("start-delay", "stop-delay"),
    "duplicate": ("start-duplicate", "stop-duplicate"),
    "reorder": ("start-reorder", "stop-reorder"),
    "vote-crash": ("start-vote-crash", "stop-vote-crash"),
}

LEADER = "leader"  # symbolic node: the run loop substitutes the observed leader

BOUNCE_CHANCE = 0.35  # of a kill: restart almost at once instead of an interval later
BOUNCE_DELAYS = (0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class ScheduledOp:
    """One nemesis operation at `at` seconds after the fault phase began."""

    at: float
    family: str
    f: str
    value: Any = None
    # A bounce's restart: due `at`, but it follows its kill however long the kill took,
    # so its lateness is not the schedule falling behind.
    follows: bool = False

    def op(self) -> dict[str, Any]:
        return {"f": self.f, "value": self.value}


@dataclass
class _Active:
    family: str
    nodes: tuple[str, ...] = field(default_factory=tuple)


def _victims(rng: random.Random, nodes: list[str], busy: set[str]) -> tuple[str, ...]:
    """Nodes for a kill or pause: the leader, or a random minority not already hit."""
    free = [n for n in nodes if n not in busy]
    most = max(1, (len(nodes) - 1) // 2)
    if not free:
        return ()
    if rng.random() < 0.4 and not busy:
        return (LEADER,)
    k = rng.randint(1, min(most, len(free)))
    return tuple(sorted(rng.sample(free, k)))


def _start(rng: random.Random, family: str, nodes: list[str], busy: set[str]) -> tuple[str, Any, tuple[str, ...]]:
    """The start op (name, value) for a family, and the nodes it reserves."""
    if family == "partition":
        grudge = rng.choice(GRUDGES if len(nodes) >= 3 else ("halves", "one-way"))
        return "start-partition", {"grudge": grudge, "seed": rng.randrange(2**31)}, ()
    if family in ("kill", "pause"):
        victims = _victims(rng, nodes, busy)
        return FAMILY_OPS[family][0], {"nodes": list(victims)}, victims
    if family == "clock":
        k = rng.randint(1, max(1, (len(nodes) - 1) // 2))
        targets = sorted(rng.sample(nodes, k))
        kind = rng.choice(("bump", "bump", "strobe", "rate"))
        if kind == "bump":
            delta = rng.choice((-1, 1)) * rng.choice((250, 1000, 5000, 60_000, 3_600_000))
            return "bump-clock", {"nodes": targets, "delta_ms": delta}, ()
        if kind == "strobe":
            return (
                "strobe-clock",
                {"nodes": targets, "delta_ms": rng.choice((200, 1000, 10_000)), "period_ms": rng.choice((10, 100, 500))},
                (),
            )
        return "bump-clock", {"nodes": targets, "delta_ms": 0, "rate": rng.choice((0.5, 2.0, 5.0))}, ()
    if family == "loss":
        k = rng.randint(1, len(nodes))
        return "start-loss", {"nodes": sorted(rng.sample(nodes, k)), "probability": rng.choice((0.1, 0.3, 0.5))}, ()
    if family == "vote-crash":
        return "start-vote-crash", None, ()  # it picks its nodes from who leads at the time
    return FAMILY_OPS[family][0], {"nodes": sorted(nodes)}, ()


def _stop(active: _Active) -> tuple[str, Any]:
    name = FAMILY_OPS[active.family][1]
    if active.family in ("kill", "pause"):
        return name, {"nodes": list(active.nodes)}
    return name, None


def make_schedule(
    seed: int,
    faults: list[str] | tuple[str, ...],
    nodes: list[str],
    interval: float,
    time_limit: float,
) -> list[ScheduledOp]:
    """The plan of nemesis operations for one run, in time order; deterministic in its arguments."""
    faults = [f for f in faults if f in FAMILY_OPS]
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
            name, value = _stop(victim)
            plan.append(ScheduledOp(at, victim.family, name, value))
        else:
            family = rng.choice(inactive)
            busy = {n for a in active for n in a.nodes}
            name, value, reserved = _start(rng, family, nodes, busy)
            if family in ("kill", "pause") and not reserved:
                at += interval
                continue
            if family == "kill" and rng.random() < BOUNCE_CHANCE:
                # A bounce: restart within a second, so nodes crash and come back while
                # an election is still going on (where forgotten votes and lost
                # state show up), not only between settled terms.
                back = min(rng.choice(BOUNCE_DELAYS), interval / 2)
                plan.append(ScheduledOp(at, family, name, value))
                plan.append(ScheduledOp(round(at + back, 3), family, "start", {"nodes": list(reserved)}, follows=True))
                at += interval
                continue
            plan.append(ScheduledOp(at, family, name, value))
            active.append(_Active(family, reserved))
        at += interval
    for a in active:
        name, value = _stop(a)
        plan.append(ScheduledOp(time_limit, a.family, name, value))
    return plan
