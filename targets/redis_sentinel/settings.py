"""The Redis Sentinel target's settings (a spec's `options:`): Sentinel's failover timing, the write mitigation, persistence.

Sentinel notices a dead primary after `down-after-milliseconds` without a
valid answer to its once-a-second PING (subjectively down), asks the other
Sentinels, and with `quorum` of them agreeing (objectively down) the one a
majority of Sentinels votes for promotes a replica. Its own defaults (30 s
down-after, 3 min failover-timeout) would let a 60 s test see one failover at
most, so ours are 2000 ms and 6000 ms: a cut-off primary is replaced 3-5 s
into a partition, and a Sentinel may retry a failover that stalled after
2 x failover-timeout = 12 s. The quorum is a majority of the nodes (there is
a Sentinel on every node).

`min_replicas_to_write` / `min_replicas_max_lag` are Redis's documented
mitigation: a primary that has had fewer than N replicas acknowledging its
stream within the last `max_lag` seconds refuses writes (NOREPLICAS), so a
primary cut off from its replicas stops acknowledging writes max_lag seconds
later, not never. Off (0) by default, as Redis ships. `appendonly` and
`appendfsync` are Redis's own (AOF off, everysec when on).

Option names are spelt with `_` or `-`: `min-replicas-to-write` is
`min_replicas_to_write`, `down-after-milliseconds` is `down_after_ms`.

Sentinel has no randomized election timeout to sweep, only down-after: the
election bench measures it with `--ranges own --option down_after_ms=D`, and
refuses a Raft range in one line (its probe range is refused here as an
unknown option).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from targets.options import SettingsError, one_of, positive_int, unknown

__all__ = ["KNOWN", "PERSISTENCE", "RedisSentinelSettings", "SettingsError", "canonical", "persistence"]

DOWN_AFTER_MS = 2000
FAILOVER_TIMEOUT_MS = 6000
MIN_REPLICAS_MAX_LAG_S = 10  # Redis's default
FSYNC_MODES = ("always", "everysec", "no")

# Redis's own persistence options, shared with the standalone `redis` target (targets/redis).
PERSISTENCE = {
    "appendonly": "Redis appendonly: yes / no (default no, as Redis ships)",
    "appendfsync": "Redis appendfsync: always / everysec / no (default everysec)",
}

KNOWN = {
    "down_after_ms": f"Sentinel down-after-milliseconds: ms without a valid PING reply before a node is down "
                     f"(default {DOWN_AFTER_MS}; Sentinel's own 30000)",
    "failover_timeout_ms": f"Sentinel failover-timeout, ms (default {FAILOVER_TIMEOUT_MS}; Sentinel's own 180000)",
    "quorum": "Sentinels that must agree the primary is down (default: a majority of the nodes)",
    "min_replicas_to_write": "Redis min-replicas-to-write: refuse writes with fewer good replicas (default 0: off)",
    "min_replicas_max_lag": f"Redis min-replicas-max-lag, s: a replica is good if it acked within this "
                            f"(default {MIN_REPLICAS_MAX_LAG_S})",
    **PERSISTENCE,
}

ALIASES = {
    "down_after_milliseconds": "down_after_ms",
    "failover_timeout": "failover_timeout_ms",
}


def canonical(name: Any) -> str:
    text = str(name).replace("-", "_").lower()
    return ALIASES.get(text, text)


def _yes_no(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return one_of(name, value, ("yes", "no")) == "yes"


def persistence(given: dict[str, Any]) -> tuple[bool, str]:
    """(appendonly, appendfsync) from canonical option names, or SettingsError."""
    # YAML reads a bare `no` as false.
    fsync = "no" if given.get("appendfsync") is False else given.get("appendfsync", "everysec")
    return _yes_no("appendonly", given.get("appendonly", "no")), one_of("appendfsync", fsync, FSYNC_MODES)


def _non_negative(name: str, value: Any, unit: str) -> int:
    if value == 0 and not isinstance(value, bool):
        return 0
    return positive_int(name, value, unit)


@dataclass(frozen=True)
class RedisSentinelSettings:
    down_after_ms: int = DOWN_AFTER_MS
    failover_timeout_ms: int = FAILOVER_TIMEOUT_MS
    quorum: int | None = None  # None: a majority of the nodes
    min_replicas_to_write: int = 0
    min_replicas_max_lag: int = MIN_REPLICAS_MAX_LAG_S
    appendonly: bool = False
    appendfsync: str = "everysec"

    @classmethod
    def parse(cls, settings: dict[str, Any] | None) -> RedisSentinelSettings:
        """The settings, or SettingsError naming the first one that is wrong."""
        given = {canonical(k): v for k, v in (settings or {}).items()}
        unknown("redis-sentinel", given, KNOWN)
        down_after = positive_int("down_after_ms", given.get("down_after_ms", DOWN_AFTER_MS), "milliseconds")
        quorum = given.get("quorum")
        return cls(
            down_after,
            positive_int("failover_timeout_ms", given.get("failover_timeout_ms", FAILOVER_TIMEOUT_MS), "milliseconds"),
            None if quorum is None else positive_int("quorum", quorum, "Sentinels"),
            _non_negative("min_replicas_to_write", given.get("min_replicas_to_write", 0), "replicas"),
            positive_int("min_replicas_max_lag", given.get("min_replicas_max_lag", MIN_REPLICAS_MAX_LAG_S), "seconds"),
            *persistence(given),
        )

    def quorum_of(self, nodes: int) -> int:
        """The quorum for a cluster of `nodes` Sentinels; SettingsError if it is more Sentinels than there are."""
        q = self.quorum if self.quorum is not None else nodes // 2 + 1
        if q > nodes:
            raise SettingsError(f"quorum {q} is more than the {nodes} Sentinels of this run")
        return q
