"""The sans-IO raftkv node: Raft core + KV state machine + client request bookkeeping.

A driver (the asyncio server, or the deterministic simulator) feeds it events
(`tick`, `receive`, `client_request`, `transfer_leadership`) and then drains
`ready()`: it persists what the Ready says (fsync) BEFORE it sends the Ready's
messages and replies, then calls `advance(rd)`. Nothing in here reads a clock,
touches a socket or a file; randomness comes only from the rng passed in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# The deliberate bugs a node can be started with, so that the harness can prove
# it catches each of them. Every one is off by default.
BUGS: dict[str, str] = {
    "stale-read": "reads are answered from the local applied state without ReadIndex (any node, even a deposed leader)",
    "no-persist-vote": "votedFor is kept only in memory, so a restarted node can vote twice in one term",
    "commit-old-term": "the Figure 8 rule is broken: entries of earlier terms are committed by counting replicas (and no start-of-term no-op)",
    "ack-before-replicate": "the leader answers a put once it is in its own log, before a majority has it",
    "lease-no-checkquorum": "lease reads are served by a leader that no longer has a quorum (lease never expires, CheckQuorum off)",
}


@dataclass(frozen=True)
class NodeConfig:
    """Everything a node needs to know about itself and the cluster; times in milliseconds."""

    id: str
    peers: tuple[str, ...]  # all member ids including self
    election_timeout: tuple[int, int] = (150, 300)  # randomized per election in [lo, hi]
    heartbeat: int = 50
    tick_ms: int = 10  # the driver calls tick() every tick_ms of (possibly skewed) monotonic time
    lease_reads: bool = False
    bugs: frozenset[str] = frozenset()  # subset of BUGS
    snapshot_every: int = 1000  # compact the log after this many applied entries
    request_timeout: int = 2000  # a client request unanswered this long gets 504 {"error": "timeout"}

    def __post_init__(self) -> None:
        unknown = set(self.bugs) - set(BUGS)
        if unknown:
            raise ValueError(f"unknown bug(s) {sorted(unknown)}; known: {sorted(BUGS)}")
        if self.id not in self.peers:
            raise ValueError(f"node id {self.id!r} is not among peers {self.peers}")
        lo, hi = self.election_timeout
        if not 0 < lo <= hi:
            raise ValueError(f"election timeout must satisfy 0 < lo <= hi, got {self.election_timeout}")


@dataclass
class Restored:
    """What a restarting node finds on disk.

    hard_state: the last persisted {"term", "voted_for", "commit"} (None on first start).
    snapshot: the last persisted {"index", "term", "state", "members"} (None if none).
    entries: the persisted log entries in index order; those at or below the
        snapshot index are ignored.
    """

    hard_state: dict | None = None
    snapshot: dict | None = None
    entries: list[dict] = field(default_factory=list)


@dataclass
class Ready:
    """What the driver must do, in order: persist, then send and reply, then advance().

    Persisting means, in this order: write `snapshot` (if any) and drop persisted
    entries with index <= snapshot["index"]; drop persisted entries with index >=
    `truncate_from` (if not None); append `entries`; write `hard_state` (if not
    None); fsync. Only then send `messages` and answer `replies`.
    """

    hard_state: dict | None = None  # {"term", "voted_for", "commit"}; None = unchanged
    truncate_from: int | None = None  # drop persisted entries with index >= this before appending
    entries: list[dict] = field(default_factory=list)  # {"index", "term", "kind", "data"}
    snapshot: dict | None = None  # {"index", "term", "state", "members"}
    messages: list[dict] = field(default_factory=list)  # peer messages; "dst" says where
    replies: list[tuple[int, int, dict]] = field(default_factory=list)  # (handle, http status, body)

    @property
    def is_empty(self) -> bool:
        """True when there is nothing to persist, send or answer."""
        return (
            self.hard_state is None
            and self.truncate_from is None
            and not self.entries
            and self.snapshot is None
            and not self.messages
            and not self.replies
        )

    @property
    def must_persist(self) -> bool:
        """True when something must be fsynced before messages and replies go out."""
        return (
            self.hard_state is not None
            or self.truncate_from is not None
            or bool(self.entries)
            or self.snapshot is not None
        )


class RaftKVNode:
    """One member of a raftkv cluster, without I/O.

    Each event method only updates memory; `ready()` returns everything that
    accumulated since the previous `ready()` (call it after every event or batch
    of events; it is cheap when nothing happened).
    """

    def __init__(self, config: NodeConfig, restored: Restored | None, rng: random.Random):
        raise NotImplementedError

    def tick(self) -> None:
        """One tick_ms of monotonic time has passed."""
        raise NotImplementedError

    def receive(self, msg: dict) -> None:
        """A peer message ("type", "src", "dst", "term", ...), already authenticated."""
        raise NotImplementedError

    def client_request(self, handle: int, op: dict) -> None:
        """A client operation; its answer appears later in some Ready.replies under `handle`.

        op is {"f": "get", "key": k} | {"f": "put", "key": k, "value": v, "request_id": str|None}
        | {"f": "cas", "key": k, "from": a, "to": b, "request_id": str|None}.
        Every handle gets exactly one reply (503 not-leader, 504 timeout, or the result).
        """
        raise NotImplementedError

    def transfer_leadership(self, to: str) -> None:
        """Ask this node, if it leads, to hand leadership to `to` (TimeoutNow); else ignored."""
        raise NotImplementedError

    def ready(self) -> Ready:
        """Drain what to persist, send and answer since the previous call."""
        raise NotImplementedError

    def advance(self, rd: Ready) -> None:
        """The driver has persisted `rd` and sent its messages and replies."""
        raise NotImplementedError

    def status(self) -> dict:
        """{"id", "role", "term", "leader", "commit_index", "applied_index", "last_log_index"}."""
        raise NotImplementedError

    def metrics(self) -> dict:
        """Counters and gauges: elections_started, leader_changes, term, is_leader, commit_index, ..."""
        raise NotImplementedError
