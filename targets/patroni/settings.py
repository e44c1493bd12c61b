"""The Patroni target's settings (a spec's `options:`): replication mode, failover lag and Patroni's timing, checked before a run.

Patroni's failover clock is its leader key in the DCS: the primary renews it
every `loop_wait` seconds, with a lease of `ttl` seconds; a replica may take
the lead only once the key has expired. A DCS call is retried for
`retry_timeout` seconds, after which a primary that could not renew its key
demotes itself. Patroni's rule (its dynamic-configuration docs) is
`loop_wait + 2 * retry_timeout <= ttl`: the primary must have given up before
its key can expire, or two primaries could serve at once by design.

Patroni's defaults (ttl 30, loop_wait 10, retry_timeout 10) would take up to
half a 60 s test to notice a dead primary, so ours are ttl 10, loop_wait 2,
retry_timeout 3 (2 + 2 * 3 = 8 <= 10): a killed primary's key expires within
10 s. Debian's Patroni 3.0.2 enforces no minimum; later Patroni releases
document minimums of ttl 20, loop_wait 1, retry_timeout 3. We keep the last
two and the rule, and allow a ttl under 20 on purpose (short tests); a ttl of
20 or more is Patroni's later advice and can be asked for.

`synchronous_mode` is off by default, as Patroni ships: a commit is
acknowledged once it is durable on the primary alone, and a failover may lose
it. On, Patroni names a synchronous standby in the DCS and promotes only that
one; `synchronous_mode: strict` also refuses writes while no standby is
there (Patroni's synchronous_mode_strict). `maximum_lag_on_failover` (bytes,
Patroni's default 1 MiB) is how far behind a replica may be and still be
promoted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from targets.options import SettingsError, positive_int, unknown

__all__ = ["KNOWN", "PatroniSettings", "SettingsError"]

TTL_S = 10
LOOP_WAIT_S = 2
RETRY_TIMEOUT_S = 3
MIN_RETRY_TIMEOUT_S = 3  # Patroni's documented minimum (3.1+); below it a DCS hiccup demotes the primary
MAXIMUM_LAG_ON_FAILOVER = 1048576  # Patroni's default, bytes
SYNC_MODES = ("off", "on", "strict")
# What the election bench (and a Raft target's spec) sets: refused with what governs Patroni instead.
RAFT_TIMING = ("election_timeout", "heartbeat")

KNOWN = {
    "synchronous_mode": "off (default, as Patroni ships: asynchronous replication), on, or strict",
    "maximum_lag_on_failover": f"bytes a replica may lag and still be promoted (default {MAXIMUM_LAG_ON_FAILOVER})",
    "ttl": f"seconds the leader key lives without renewal (default {TTL_S})",
    "loop_wait": f"seconds between Patroni's HA loops (default {LOOP_WAIT_S})",
    "retry_timeout": f"seconds Patroni retries a DCS or PostgreSQL call (default {RETRY_TIMEOUT_S})",
}


@dataclass(frozen=True)
class PatroniSettings:
    synchronous_mode: str = "off"
    maximum_lag_on_failover: int = MAXIMUM_LAG_ON_FAILOVER
    ttl: int = TTL_S
    loop_wait: int = LOOP_WAIT_S
    retry_timeout: int = RETRY_TIMEOUT_S

    @classmethod
    def parse(cls, settings: dict[str, Any] | None) -> PatroniSettings:
        """The settings, or SettingsError naming the first one that is wrong."""
        given = {str(k).replace("-", "_"): v for k, v in (settings or {}).items()}
        raft = [n for n in RAFT_TIMING if n in given]
        if raft:
            raise SettingsError(
                f"{raft[0]}: Patroni has no Raft election timing: a replica takes over once the primary's leader "
                f"key in etcd expires, ttl seconds after its last renewal (options ttl, loop_wait, retry_timeout)")
        unknown("patroni", given, KNOWN)
        mode = _sync_mode(given.get("synchronous_mode", "off"))
        lag = given.get("maximum_lag_on_failover", MAXIMUM_LAG_ON_FAILOVER)
        if isinstance(lag, bool) or not isinstance(lag, int) or lag < 0:
            raise SettingsError(f"maximum_lag_on_failover: expected a whole number of bytes, 0 or more, got {lag!r}")
        ttl = positive_int("ttl", given.get("ttl", TTL_S), "seconds")
        loop_wait = positive_int("loop_wait", given.get("loop_wait", LOOP_WAIT_S), "seconds")
        retry = positive_int("retry_timeout", given.get("retry_timeout", RETRY_TIMEOUT_S), "seconds")
        if retry < MIN_RETRY_TIMEOUT_S:
            raise SettingsError(f"retry_timeout {retry} s is under Patroni's documented minimum of "
                                f"{MIN_RETRY_TIMEOUT_S} s")
        if loop_wait + 2 * retry > ttl:
            raise SettingsError(
                f"loop_wait {loop_wait} + 2 * retry_timeout {retry} = {loop_wait + 2 * retry} s is over ttl {ttl} s: "
                f"Patroni requires loop_wait + 2 * retry_timeout <= ttl (a primary must demote before its key "
                f"can expire); use a ttl of at least {loop_wait + 2 * retry}")
        return cls(mode, lag, ttl, loop_wait, retry)

    def dcs(self) -> dict[str, Any]:
        """The bootstrap.dcs section of patroni.yml: the dynamic configuration the first primary writes to etcd."""
        return {
            "ttl": self.ttl,
            "loop_wait": self.loop_wait,
            "retry_timeout": self.retry_timeout,
            "maximum_lag_on_failover": self.maximum_lag_on_failover,
            "synchronous_mode": self.synchronous_mode != "off",
            "synchronous_mode_strict": self.synchronous_mode == "strict",
        }


def _sync_mode(value: Any) -> str:
    """off / on / strict; YAML's booleans (synchronous_mode: true) and on/off (read as booleans) too."""
    if value is True:
        return "on"
    if value is False:
        return "off"
    if isinstance(value, str) and value.lower() in SYNC_MODES:
        return value.lower()
    raise SettingsError(f"synchronous_mode: expected off, on or strict, got {value!r}")
