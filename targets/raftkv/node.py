"""The sans-IO raftkv node: Raft core + KV state machine + client request bookkeeping.

A driver (the asyncio server, or the deterministic simulator) feeds it events
(`tick`, `receive`, `client_request`, `transfer_leadership`) and then drains
`ready()`: it persists what the Ready says (fsync) BEFORE it sends the Ready's
messages and replies, then calls `advance(rd)`. Nothing in here reads a clock,
touches a socket or a file; randomness comes only from the rng passed in.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from targets.raftkv import messages as m
from targets.raftkv.core import LEADER, CoreConfig, RaftCore
from targets.raftkv.kvstate import KVState, Outcome

# The deliberate bugs a node can be started with, so that the harness can prove
# it catches each of them. Every one is off by default.
BUGS: dict[str, str] = {
    "stale-read": "reads are answered from the local applied state without ReadIndex (any node, even a deposed leader)",
    "no-persist-vote": "votedFor is kept only in memory, so a restarted node can vote twice in one term",
    "commit-old-term": "the Figure 8 rule is broken: entries of earlier terms are committed by counting replicas (and no start-of-term no-op)",
    "ack-before-replicate": "the leader answers a put once it is in its own log, before a majority has it",
    "lease-no-checkquorum": "lease reads are served by a leader that no longer has a quorum (implies lease reads; the lease never expires, CheckQuorum off)",
    # etcd#14370 (a single-node etcd acknowledged writes before its WAL was durable, and lost them in a crash):
    # every node here acknowledges, votes and replicates with its WAL written but never fsynced. A process
    # crash keeps the page cache, so only losing unsynced writes (the lose-unsynced fault) shows it.
    "no-fsync": "the WAL is written but never fsynced: votes, appends and acknowledgements rest on data a power loss drops",
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
        if self.tick_ms < 1 or lo < self.tick_ms:
            raise ValueError(f"tick of {self.tick_ms} ms must be positive and below the election timeout")
        if not self.tick_ms <= self.heartbeat < lo:
            # A heartbeat as slow as the election timeout makes healthy followers campaign.
            raise ValueError(f"heartbeat {self.heartbeat} ms must be at least one tick and below "
                             f"the election timeout's lower bound {lo} ms")
        if self.snapshot_every < 1 or self.request_timeout < self.tick_ms:
            raise ValueError("snapshot_every must be >= 1 and request_timeout at least one tick")


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


def _ticks(ms: int, tick_ms: int) -> int:
    return max(1, ms // tick_ms)


def not_leader(leader: str | None) -> tuple[int, dict]:
    return 503, {"error": "not-leader", "leader": leader}


TIMEOUT = (504, {"error": "timeout"})


def _well_formed(op: dict) -> bool:
    if not isinstance(op, dict):
        return False
    needs = {"get": (), "put": ("value",), "cas": ("from", "to")}.get(op.get("f"))
    if needs is None or not isinstance(op.get("key"), str):
        return False
    request_id = op.get("request_id")
    return all(k in op for k in needs) and (request_id is None or isinstance(request_id, str))


@dataclass(frozen=True)
class PendingWrite:
    handle: int
    term: int  # the entry (index, term) that carries this write


class RaftKVNode:
    """One member of a raftkv cluster, without I/O.

    Each event method only updates memory; `ready()` returns everything that
    accumulated since the previous `ready()` (call it after every event or batch
    of events; it is cheap when nothing happened).
    """

    def __init__(self, config: NodeConfig, restored: Restored | None, rng: random.Random):
        self.config = config
        restored = restored or Restored()
        lo, hi = config.election_timeout
        self.core = RaftCore(
            CoreConfig(
                id=config.id,
                peers=tuple(config.peers),
                election_ticks=(_ticks(lo, config.tick_ms), _ticks(hi, config.tick_ms)),
                heartbeat_ticks=_ticks(config.heartbeat, config.tick_ms),
                bugs=frozenset(config.bugs),
            ),
            rng,
            hard_state=restored.hard_state,
            snapshot=restored.snapshot,
            entries=restored.entries,
        )
        snap = restored.snapshot
        self.kv = KVState.from_json(snap["state"]) if snap else KVState()
        self.applied = snap["index"] if snap else 0
        self.request_timeout_ticks = _ticks(config.request_timeout, config.tick_ms)
        self.lease_reads = config.lease_reads or "lease-no-checkquorum" in config.bugs
        self.now = 0
        self.deadlines: dict[int, int] = {}  # open handle -> tick by which it gets a 504
        self.pending_writes: dict[int, PendingWrite] = {}  # log index -> who waits for it
        self.read_keys: dict[int, str] = {}  # handle -> key of a read in progress
        self.reads_to_serve: list[tuple[int, int]] = []  # (handle, index the state must reach)
        self.replies: list[tuple[int, int, dict]] = []
        self.counters = {"client_requests": 0, "replies_timeout": 0, "replies_not_leader": 0}
        # A test hook: called with each applied entry, and with
        # {"kind": "snapshot", "index", "term"} when a snapshot replaces the state.
        self.apply_observer: Callable[[dict], None] | None = None
        self._after_event()

    # ---- events -------------------------------------------------------------

    def tick(self) -> None:
        """One tick_ms of monotonic time has passed."""
        self.now += 1
        self.core.tick()
        self._expire_requests()
        self._after_event()

    def receive(self, msg: dict) -> None:
        """A peer message ("type", "src", "dst", "term", ...), already authenticated."""
        if msg.get("type") not in m.ALL_TYPES or msg.get("dst") != self.config.id:
            return
        self.core.step(msg)
        self._after_event()

    def client_request(self, handle: int, op: dict) -> None:
        """A client operation; its answer appears later in some Ready.replies under `handle`.

        op is {"f": "get", "key": k} | {"f": "put", "key": k, "value": v, "request_id": str|None}
        | {"f": "cas", "key": k, "from": a, "to": b, "request_id": str|None}.
        Every handle gets exactly one reply (503 not-leader, 504 timeout, or the result).
        """
        self.counters["client_requests"] += 1
        self.deadlines[handle] = self.now + self.request_timeout_ticks
        if not _well_formed(op):
            # Refused here, so that no malformed write can reach the log and
            # trip every replica that applies it.
            self._reply(handle, 400, {"error": "bad-request"})
            return
        f = op["f"]
        if f == "get":
            self._start_read(handle, op["key"])
        else:
            self._start_write(handle, op)
        self._after_event()

    def transfer_leadership(self, to: str) -> None:
        """Ask this node, if it leads, to hand leadership to `to` (TimeoutNow); else ignored."""
        self.core.transfer_leadership(to)
        self._after_event()

    def _start_read(self, handle: int, key: str) -> None:
        if "stale-read" in self.config.bugs:
            # The bug: whatever this node has applied is taken as the truth.
            self._reply_outcome(handle, self.kv.read(key))
            return
        if self.core.role != LEADER:
            self._reply(handle, *not_leader(self.core.leader))
            return
        self.read_keys[handle] = key
        if self.lease_reads and self.core.lease_valid() and self.core.committed_in_term():
            self.reads_to_serve.append((handle, self.core.commit))
        else:
            self.core.read_index(handle)

    def _start_write(self, handle: int, op: dict) -> None:
        if self.core.role != LEADER:
            self._reply(handle, *not_leader(self.core.leader))
            return
        write = {k: op[k] for k in ("f", "key", "value", "from", "to") if k in op}
        write["request_id"] = op.get("request_id")
        placed = self.core.propose(m.OP, {"op": write})
        if placed is None:  # handing leadership over: nothing was appended
            self._reply(handle, *not_leader(self.core.transferee))
            return
        index, term = placed
        self.pending_writes[index] = PendingWrite(handle, term)
        if "ack-before-replicate" in self.config.bugs and op["f"] == "put":
            self._reply(handle, 200, {})  # the bug: only our own log has it so far

    # ---- bookkeeping after every event ---------------------------------------

    def _after_event(self) -> None:
        core = self.core
        if core.snapshot_to_restore is not None:
            self._restore(core.snapshot_to_restore)
            core.snapshot_to_restore = None
        self._apply_committed()
        for ctx, index in core.reads_confirmed:
            if ctx in self.read_keys:
                self.reads_to_serve.append((ctx, index))
        core.reads_confirmed = []
        for ctx in core.reads_failed:
            self.read_keys.pop(ctx, None)
            self._reply(ctx, *not_leader(core.leader))
        core.reads_failed = []
        self._serve_reads()
        self._maybe_compact()

    def _restore(self, snap: dict) -> None:
        self.kv = KVState.from_json(snap["state"])
        self.applied = snap["index"]
        for index in [i for i in self.pending_writes if i <= snap["index"]]:
            # Whether our entry made it into the snapshot we cannot tell.
            self._reply(self.pending_writes.pop(index).handle, *TIMEOUT)
        if self.apply_observer:
            self.apply_observer({"kind": "snapshot", "index": snap["index"], "term": snap["term"]})

    def _apply_committed(self) -> None:
        while self.applied < self.core.commit:
            self.applied += 1
            entry = self.core.log.entry(self.applied)
            outcome = self.kv.apply(entry["data"]["op"]) if entry["kind"] == m.OP else None
            waiter = self.pending_writes.pop(self.applied, None)
            if waiter is not None:
                if waiter.term == entry["term"]:
                    self._reply_outcome(waiter.handle, outcome)
                else:
                    # Another leader's entry took this index, so ours can never be
                    # committed: a definite failure.
                    self._reply(waiter.handle, *not_leader(self.core.leader))
            if self.apply_observer:
                self.apply_observer(entry)

    def _serve_reads(self) -> None:
        if not self.reads_to_serve:
            return
        waiting = []
        for handle, index in self.reads_to_serve:
            if handle not in self.read_keys:
                continue  # timed out meanwhile
            if index <= self.applied:
                self._reply_outcome(handle, self.kv.read(self.read_keys.pop(handle)))
            else:
                waiting.append((handle, index))
        self.reads_to_serve = waiting

    def _maybe_compact(self) -> None:
        core = self.core
        if self.applied - core.log.snap_index < self.config.snapshot_every:
            return
        core.compact(
            {
                "index": self.applied,
                "term": core.log.term_at(self.applied),
                "state": self.kv.to_json(),
                "members": list(self.config.peers),
            }
        )

    def _expire_requests(self) -> None:
        expired = [h for h, deadline in self.deadlines.items() if deadline <= self.now]
        for handle in expired:
            self.read_keys.pop(handle, None)
            self.counters["replies_timeout"] += 1
            self._reply(handle, *TIMEOUT)
        if expired:
            gone = set(expired)
            self.pending_writes = {i: w for i, w in self.pending_writes.items() if w.handle not in gone}

    def _reply_outcome(self, handle: int, outcome: Outcome | None) -> None:
        outcome = outcome or Outcome(200, {})
        self._reply(handle, outcome.status, outcome.body)

    def _reply(self, handle: int, status: int, body: dict) -> None:
        # Each handle is answered once; later outcomes (after a timeout, or
        # after an early buggy ack) are dropped.
        if self.deadlines.pop(handle, None) is None:
            return
        if status == 503:
            self.counters["replies_not_leader"] += 1
        self.replies.append((handle, status, dict(body)))

    # ---- the driver's side ---------------------------------------------------

    def ready(self) -> Ready:
        """Drain what to persist, send and answer since the previous call."""
        self.core.flush()
        truncate_from, entries, snapshot = self.core.take_unstable()
        rd = Ready(
            hard_state=self.core.take_hard_state(),
            truncate_from=truncate_from,
            entries=entries,
            snapshot=snapshot,
            messages=self.core.take_outbox(),
            replies=self.replies,
        )
        self.replies = []
        return rd

    def advance(self, rd: Ready) -> None:
        """The driver has persisted `rd` and sent its messages and replies."""
        # Everything is handed over in ready(); nothing waits for this yet. The
        # call stays in the contract so that asynchronous persistence can be
        # added without changing drivers.

    def status(self) -> dict:
        """{"id", "role", "term", "leader", "commit_index", "applied_index", "last_log_index"}."""
        core = self.core
        return {
            "id": self.config.id,
            "role": core.role,
            "term": core.term,
            "leader": core.leader,
            "commit_index": core.commit,
            "applied_index": self.applied,
            "last_log_index": core.log.last_index(),
        }

    def metrics(self) -> dict:
        """Counters and gauges: elections_started, leader_changes, term, is_leader, commit_index, ..."""
        core, c = self.core, self.core.counters
        return {
            "elections_started": c.elections_started,
            "prevotes_started": c.prevotes_started,
            "leader_changes": c.leader_changes,
            "became_leader": c.became_leader,
            "check_quorum_stepdowns": c.check_quorum_stepdowns,
            "snapshots_sent": c.snapshots_sent,
            "snapshots_installed": c.snapshots_installed,
            "transfers_started": c.transfers_started,
            "messages_rejected_stale_term": c.messages_rejected_stale_term,
            "term": core.term,
            "is_leader": 1 if core.role == LEADER else 0,
            "commit_index": core.commit,
            "applied_index": self.applied,
            "last_log_index": core.log.last_index(),
            "snapshot_index": core.log.snap_index,
            "pending_requests": len(self.deadlines),
            **self.counters,
        }
