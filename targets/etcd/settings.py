"""The etcd target's settings (a spec's `options:`): Raft timing and the read mode, checked before a run.

etcd has one election timeout E and randomizes each election over [E, 2E)
(raft's randomizedElectionTimeout), in whole heartbeats: its tick is the
heartbeat interval. So the Raft paper's 150-300 ms is `election_timeout: 150`
(or "150-300") with `heartbeat: 30`; etcd refuses an election timeout under
5 heartbeats, and so do we, before anything starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from targets.options import SettingsError, one_of, positive_int, unknown

HEARTBEAT_MS = 100  # etcd's own defaults
ELECTION_MS = 1000
MAX_ELECTION_MS = 50000  # etcd refuses more
READ_MODES = ("linearizable", "serializable")

KNOWN = {
    "heartbeat": "heartbeat interval in ms (etcd --heartbeat-interval; default 100)",
    "election_timeout": 'election timeout in ms, or "E-2E" (etcd --election-timeout; default 1000)',
    "reads": "linearizable (default: a quorum read through the leader) or serializable (the local member)",
}


@dataclass(frozen=True)
class EtcdSettings:
    heartbeat_ms: int = HEARTBEAT_MS
    election_ms: int = ELECTION_MS
    reads: str = "linearizable"

    @property
    def serializable_reads(self) -> bool:
        return self.reads == "serializable"

    @classmethod
    def parse(cls, settings: dict[str, Any]) -> EtcdSettings:
        """The settings, or SettingsError naming the first one that is wrong."""
        given = {str(k).replace("-", "_"): v for k, v in (settings or {}).items()}
        unknown("etcd", given, KNOWN)
        heartbeat = _ms("heartbeat", given.get("heartbeat", HEARTBEAT_MS))
        election = _election_ms(given.get("election_timeout", ELECTION_MS))
        if election < 5 * heartbeat:
            raise SettingsError(
                f"election_timeout {election} ms is under 5 heartbeats of {heartbeat} ms, which etcd refuses; "
                f"use a heartbeat of at most {election // 5} ms"
            )
        if election > MAX_ELECTION_MS:
            raise SettingsError(f"election_timeout {election} ms is over etcd's limit of {MAX_ELECTION_MS} ms")
        reads = one_of("reads", given.get("reads", "linearizable"), READ_MODES)
        return cls(heartbeat, election, reads)

    def etcd_flags(self) -> list[str]:
        return [f"--heartbeat-interval={self.heartbeat_ms}", f"--election-timeout={self.election_ms}"]


def _ms(name: str, value: Any) -> int:
    return positive_int(name, value, "milliseconds")


def _election_ms(value: Any) -> int:
    """E from `E` or "E-2E": etcd randomizes over [E, 2E) and cannot do any other range."""
    if isinstance(value, str) and "-" in value:
        lo_text, _, hi_text = value.partition("-")
        try:
            lo, hi = int(lo_text), int(hi_text)
        except ValueError:
            raise SettingsError(f'election_timeout: expected milliseconds or "E-2E", got {value!r}') from None
        if hi != 2 * lo:
            raise SettingsError(
                f"election_timeout {value}: etcd randomizes elections over [E, 2E) only; "
                f"ask for {lo}-{2 * lo} (or {lo})"
            )
        value = lo
    elif isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return _ms("election_timeout", value)
