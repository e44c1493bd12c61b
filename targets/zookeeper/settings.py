"""The ZooKeeper target's settings (a spec's `options:`): ZAB timing in ticks and the read mode, checked before a run.

ZooKeeper counts its timeouts in ticks: `tickTime` (ms) is the unit,
`initLimit` ticks is how long a follower may take to connect to a new leader
and sync, `syncLimit` ticks how far a follower may fall behind (or go silent)
before the leader drops it, and a follower that hears nothing from its leader
for syncLimit ticks leaves it. ZooKeeper's own defaults (its sample zoo.cfg:
2000 ms, 10, 5) take 10 s to notice a dead leader, a sixth of a 60 s test,
so ours are 200 ms, 50 and 15: a dead leader is noticed in 3 s, and a
follower has 10 s to sync with a new leader, headroom for five JVMs on two
busy cores (initLimit is a deadline, not a wait: a long one costs nothing
when all is well).

Option names are spelt either way: `tick_time` or ZooKeeper's `tickTime`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from targets.options import SettingsError, one_of, positive_int, unknown

__all__ = ["KNOWN", "READ_MODES", "SettingsError", "ZooKeeperSettings"]

TICK_MS = 200
INIT_LIMIT = 50
SYNC_LIMIT = 15
READ_MODES = ("plain", "sync")

KNOWN = {
    "tick_time": f"ZooKeeper's tickTime, ms: the unit of every limit below (default {TICK_MS})",
    "init_limit": f"initLimit, ticks a follower may take to connect to a leader and sync (default {INIT_LIMIT})",
    "sync_limit": f"syncLimit, ticks a follower may lag or go silent before it and its leader part (default {SYNC_LIMIT})",
    "reads": "plain (default: served by the server the session is on) or sync (a sync before every read)",
}


def _spelling(name: str) -> str:
    return str(name).replace("_", "").replace("-", "").lower()


ALIASES = {_spelling(k): k for k in KNOWN}  # "ticktime" -> "tick_time", for tickTime, tick-time, tick_time


@dataclass(frozen=True)
class ZooKeeperSettings:
    tick_ms: int = TICK_MS
    init_limit: int = INIT_LIMIT
    sync_limit: int = SYNC_LIMIT
    reads: str = "plain"

    @property
    def sync_reads(self) -> bool:
        return self.reads == "sync"

    @classmethod
    def parse(cls, settings: dict[str, Any] | None) -> ZooKeeperSettings:
        """The settings, or SettingsError naming the first one that is wrong."""
        given: dict[str, Any] = {}
        for name, value in (settings or {}).items():
            canonical = ALIASES.get(_spelling(name))
            if canonical is None:
                unknown("zookeeper", [str(name)], KNOWN)
            given[canonical] = value
        return cls(
            positive_int("tick_time", given.get("tick_time", TICK_MS), "milliseconds"),
            positive_int("init_limit", given.get("init_limit", INIT_LIMIT), "ticks"),
            positive_int("sync_limit", given.get("sync_limit", SYNC_LIMIT), "ticks"),
            one_of("reads", given.get("reads", "plain"), READ_MODES),
        )
