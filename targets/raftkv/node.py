"""The sans-IO raftkv node: Raft core + KV state machine + client request bookkeeping + forwarding.

A driver (the asyncio server, or the deterministic simulator) feeds it events
(`tick`, `receive`, `client_request`, `transfer_leadership`) and then drains
`ready()`: it persists what the Ready says (fsync) BEFORE it sends the Ready's
messages and replies, then calls `advance(rd)`. Nothing in here reads a clock,
touches a socket or a file; randomness comes only from the rng passed in.

Forwarding (as etcd's followers do): a node that is not the leader but knows
one hands a client request to it in a ``forward`` peer message and answers the
client with the leader's ``forward_resp``; reads are served by the leader's
ReadIndex (or lease) path, writes by its log, so a forwarded request has
exactly the guarantees of one sent to the leader. A node that knows no leader
(an election is under way) holds the request for one election timeout and
serves or forwards it as soon as a leader is known; only if none is by then
does it answer 503 not-leader. A forward whose answer does not come back within
the request timeout is a 504 (unknown outcome). A refusal the leader sends back
(503) is definite: the peer transport delivers a message at most once, and a
node ignores a copy of a forward it has already handled, so a refused forward
never reached any log. A node does not forward a forward (no loops).

Membership changes (membership.py) are client requests too, {"f": "membership",
"action": "add-learner" | "promote" | "remove", "member": ID}: forwarded to the
leader like a write, answered 200 with the new configuration once its entry
commits (or at once when the change already holds), 409 with the reason when
the leader cannot make it now (another change in progress, a learner that has
not caught up, ...), 400 for an id outside the address book.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from targets.raftkv import messages as m
from targets.raftkv.core import LEADER, CoreConfig, RaftCore
from targets.raftkv.kvstate import KVState, Outcome
from targets.raftkv.membership import ACTIONS, CONFIG

# The deliberate bugs a node can be started with, so that the harness can prove
# it catches each of them. Every one is off by default.
BUGS: dict[str, str] = {
    "stale-read": "reads are answered from the local applied state without ReadIndex (any node, even a deposed leader)",
    "no-persist-vote": "votedFor is kept only in memory, so a restarted node can vote twice in one term",
    # Reached on purpose by the first-write-crash fault (nemesis/first_write_crash.py), and in the simulator
    # by bounce-first-writes: leaders that die with a client entry on their own disk only, one after another.
    "commit-old-term": "the Figure 8 rule is broken: entries of earlier terms are committed by counting replicas (and no start-of-term no-op)",
    "ack-before-replicate": "the leader answers a put once it is in its own log, before a majority has it",
    "lease-no-checkquorum": "lease reads are served by a leader that no longer has a quorum (implies lease reads; the lease never expires, CheckQuorum off)",
    "no-peer-auth": "peer hellos and frames are accepted without checking their MAC or sequence number (the transport's; see transport.py)",
    # etcd#14370 (a single-node etcd acknowledged writes before its WAL was durable, and lost them in a crash):
    # every node here acknowledges, votes and replicates with its WAL written but never fsynced. A process
    # crash keeps the page cache, so only losing unsynced writes (the lose-unsynced fault) shows it.
    "no-fsync": "the WAL is written but never fsynced: votes, appends and acknowledgements rest on data a power loss drops",
    # Jepsen's etcd 0.4 and Consul analyses (2014): reads sent to the leader were answered from its
    # local state without a quorum round, so a leader deposed by a partition served stale values until
    # it noticed; the Raft dissertation (6.4) and etcd-raft's ReadOnlySafe mode exist to prevent it.
    # Here ReadIndex keeps everything but the heartbeat round that proves the leader still leads:
    # CheckQuorum still deposes it within an election timeout, so only that window is stale.
    "read-index-no-confirm": "a ReadIndex read is served at the leader's commit index at once, without the heartbeat "
                             "round that confirms it still leads",
    # The log-matching rule's classic implementation error (the Raft paper's Figure 2 step 3 read as
    # "replace everything after prevLogIndex"; etcd-raft's findConflict and the Students' Guide to Raft
    # warn against it): an AppendEntries that does not conflict, but arrives late or twice (a resend
    # after a lost message), cuts off entries the follower already acknowledged and the leader counted.
    "truncate-on-append": "a follower drops every entry after an AppendEntries' prevLogIndex before appending its "
                          "entries, even ones that do not conflict (a stale or repeated append undoes acknowledged entries)",
    # Membership changes (membership.py). A leader that keeps replicating to a member it removed and counts
    # its acknowledgements: after 4 voters become 3, the leader and the removed node make a "majority" of 2.
    "count-removed": "a leader keeps replicating to members removed from the configuration and counts their "
                     "acknowledgements toward its quorum (commit, ReadIndex, lease, CheckQuorum)",
    # A quorum size cached from the configuration before the latest change (votes and commitment alike):
    # after a learner's promotion makes 3 voters 4, two of them are taken for a majority.
    "stale-majority": "quorums (elections, commitment, reads) are sized by the configuration before the latest "
                      "change: after 3 voters become 4, two of them make a majority",
}


@dataclass(frozen=True)
class NodeConfig:
    """Everything a node needs to know about itself and the cluster; times in milliseconds."""

    # The bugs this node accepts, and those that imply lease reads (targets/paxoskv has its own).
    KNOWN_BUGS: ClassVar[dict[str, str]] = BUGS
    LEASE_BUGS: ClassVar[frozenset[str]] = frozenset({"lease-no-checkquorum"})

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
        unknown = set(self.bugs) - set(self.KNOWN_BUGS)
        if unknown:
            raise ValueError(f"unknown bug(s) {sorted(unknown)}; known: {sorted(self.KNOWN_BUGS)}")
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
    None); fsync. Only then send `messages` and answer `replies`. (A leader's
    appends and a candidate's vote requests may leave before its own write, as
    the Raft dissertation allows in 10.2.1, if the driver applies no answer to
    them before that write is done: the asyncio server does so, see server.py.)
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

# Forwards open at once, each way: this node's own to the leader, and other
# nodes' it serves as leader. Past either, 503 busy: certainly not applied.
MAX_FORWARDS = 1024
BUSY = (503, {"error": "busy", "detail": "too many forwarded requests in flight"})
# A refusal naming a newer leader is followed, up to this many sends in all.
FORWARD_ATTEMPTS = 3
# Forward ids a leader remembers having handled, to ignore a duplicate copy.
FORWARD_MEMORY = 4096


def _well_formed(op: dict) -> bool:
    if not isinstance(op, dict):
        return False
    if op.get("f") == "membership":
        return op.get("action") in ACTIONS and isinstance(op.get("member"), str)
    needs = {"get": (), "put": ("value",), "cas": ("from", "to")}.get(op.get("f"))
    if needs is None or not isinstance(op.get("key"), str):
        return False
    request_id = op.get("request_id")
    return all(k in op for k in needs) and (request_id is None or isinstance(request_id, str))


@dataclass(frozen=True)
class PendingWrite:
    handle: int
    term: int  # the entry (index, term) that carries this write


@dataclass(frozen=True)
class Held:
    """A client request waiting for this node to know a leader."""

    op: dict
    until: int  # the tick at which it is refused (503 not-leader) if no leader is known by then
    # The (leader, term) this node believed in when that leader refused the request:
    # it waits for a different belief, not for the refuser again.
    stale: tuple[str | None, int] = (None, -1)


@dataclass
class Forward:
    """A client request this node sent to the leader, awaiting its answer."""

    handle: int
    to: str  # the node the latest copy went to: only its answer counts
    op: dict
    attempts: int = 1


class RaftKVNode:
    """One member of a raftkv cluster, without I/O.

    Each event method only updates memory; `ready()` returns everything that
    accumulated since the previous `ready()` (call it after every event or batch
    of events; it is cheap when nothing happened).

    The consensus core is a class attribute: targets/paxoskv runs this same
    node (forwarding, reads, the state machine) around a Multi-Paxos core that
    answers the same calls.
    """

    core_class: ClassVar[type] = RaftCore
    message_types: ClassVar[frozenset[str]] = m.ALL_TYPES

    def __init__(self, config: NodeConfig, restored: Restored | None, rng: random.Random):
        self.config = config
        restored = restored or Restored()
        lo, hi = config.election_timeout
        self.core = self.core_class(
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
        self.lease_reads = config.lease_reads or bool(config.LEASE_BUGS & set(config.bugs))
        self.now = 0
        self.deadlines: dict[int, int] = {}  # open handle -> tick by which it gets a 504
        self.pending_writes: dict[int, PendingWrite] = {}  # log index -> who waits for it
        self.read_keys: dict[int, str] = {}  # handle -> key of a read in progress
        self.reads_to_serve: list[tuple[int, int]] = []  # (handle, index the state must reach)
        self.replies: list[tuple[int, int, dict]] = []
        self.counters = {"client_requests": 0, "replies_timeout": 0, "replies_not_leader": 0,
                         "forwards_sent": 0, "forwards_served": 0}
        # Forwarding, as the follower: id -> request; handle -> id. Ids carry a
        # random prefix so an answer meant for an earlier life of this node
        # (before a restart) matches nothing.
        self.forwards: dict[str, Forward] = {}
        self.forward_of: dict[int, str] = {}
        self._forward_prefix = f"{rng.getrandbits(48):012x}"
        self._forward_seq = itertools.count(1)
        # As the leader: our handle (negative, apart from the driver's) -> (src, id).
        self.serving: dict[int, tuple[str, str]] = {}
        self._serving_handles = itertools.count(-1, -1)
        self._forwards_seen: dict[tuple[str, str], None] = {}  # insertion order: oldest first
        self.held: dict[int, Held] = {}  # handle -> a request waiting to know a leader
        self.messages: list[dict] = []  # forwarding messages, sent with the core's
        # A test hook: called with each applied entry, and with
        # {"kind": "snapshot", "index", "term"} when a snapshot replaces the state.
        self.apply_observer: Callable[[dict], None] | None = None
        self._after_event()

    # ---- events -------------------------------------------------------------

    def tick(self) -> None:
        """One tick_ms of monotonic time has passed."""
        self.now += 1
        self.core.tick()
        for handle in [h for h, held in self.held.items() if held.until <= self.now]:
            self._reply(handle, *not_leader(None))  # sent nowhere now: certainly not applied
        self._expire_requests()
        self._after_event()

    def receive(self, msg: dict) -> None:
        """A peer message ("type", "src", "dst", "term", ...), already authenticated."""
        kind = msg.get("type")
        if kind not in self.message_types or msg.get("dst") != self.config.id:
            return
        if kind == m.FORWARD:
            self._on_forward(msg)
        elif kind == m.FORWARD_RESP:
            self._on_forward_resp(msg)
        else:
            self.core.step(msg)
        self._after_event()

    def client_request(self, handle: int, op: dict) -> None:
        """A client operation; its answer appears later in some Ready.replies under `handle`.

        op is {"f": "get", "key": k} | {"f": "put", "key": k, "value": v, "request_id": str|None}
        | {"f": "cas", "key": k, "from": a, "to": b, "request_id": str|None}.
        Every handle gets exactly one reply (503 not-leader, 504 timeout, or the result).
        """
        self.counters["client_requests"] += 1
        self._open(handle, op)
        self._after_event()

    def link_lost(self, peer: str) -> None:
        """`peer` closed its connection to this node: most likely it died (see RaftCore.leader_link_lost)."""
        self.core.leader_link_lost(peer)  # which acts only if `peer` is its leader
        self._after_event()

    def forward_unsent(self, msg: dict) -> None:
        """The driver could not send `msg` at all (no link to its peer): if it was a forward,
        it certainly reached nobody, and its client is told so (503 leader-unreachable)."""
        fwd = self.forwards.get(msg.get("id")) if msg.get("type") == m.FORWARD else None
        if fwd is not None and fwd.to == msg.get("dst"):
            # Every earlier copy was refused, so nothing of this request reached any log.
            self._reply(fwd.handle, 503, {"error": "leader-unreachable", "leader": fwd.to})
        self._after_event()

    def _open(self, handle: int, op: dict) -> None:
        self.deadlines[handle] = self.now + self.request_timeout_ticks
        if not _well_formed(op):
            # Refused here, so that no malformed write can reach the log and
            # trip every replica that applies it.
            self._reply(handle, 400, {"error": "bad-request"})
            return
        self._start(handle, op)

    def _start(self, handle: int, op: dict) -> None:
        if op["f"] == "get":
            self._start_read(handle, op)
        elif op["f"] == "membership":
            self._start_change(handle, op)
        else:
            self._start_write(handle, op)

    def transfer_leadership(self, to: str) -> None:
        """Ask this node, if it leads, to hand leadership to `to` (TimeoutNow); else ignored."""
        self.core.transfer_leadership(to)
        self._after_event()

    def _start_read(self, handle: int, op: dict) -> None:
        key = op["key"]
        if "stale-read" in self.config.bugs:
            # The bug: whatever this node has applied is taken as the truth.
            self._reply_outcome(handle, self.kv.read(key))
            return
        if self.core.role != LEADER:
            self._not_leader(handle, op)
            return
        self.read_keys[handle] = key
        if self.lease_reads and self.core.lease_valid() and self.core.committed_in_term():
            self.reads_to_serve.append((handle, self.core.commit))
        else:
            self.core.read_index(handle)

    def _start_write(self, handle: int, op: dict) -> None:
        if self.core.role != LEADER:
            self._not_leader(handle, op)
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

    def _start_change(self, handle: int, op: dict) -> None:
        if self.core.role != LEADER:
            self._not_leader(handle, op)
            return
        placed = self.core.propose_change(op["action"], op["member"])
        if placed == "not-leader":
            self._reply(handle, *not_leader(self.core.transferee))
        elif placed == "unchanged":
            self._reply(handle, 200, {**self.membership(), "unchanged": True})
        elif placed in ("unknown-node", "unknown-action"):
            self._reply(handle, 400, {"error": placed, "detail": f"known nodes: {', '.join(self.config.peers)}"})
        elif isinstance(placed, str):
            self._reply(handle, 409, {"error": placed})
        else:
            index, term = placed
            self.pending_writes[index] = PendingWrite(handle, term)

    # ---- forwarding -----------------------------------------------------------

    def _not_leader(self, handle: int, op: dict, stale: tuple[str | None, int] = (None, -1)) -> None:
        """A request for the leader, and this node is not it: forward it to the leader, or hold it
        until one is known. `stale`: the belief under which the leader refused it just now."""
        leader = self.core.leader
        if handle in self.serving:
            self._reply(handle, *not_leader(leader))  # a forward is never forwarded again
            return
        if leader is None or leader == self.config.id or (leader, self.core.term) == stale:
            # Given up before the deadline, so that the answer is a definite 503, not a 504.
            until = min(self.now + self.core.cfg.election_ticks[1], self.deadlines[handle] - 1)
            self.held[handle] = Held(op, until, stale)
            return
        if len(self.forwards) >= MAX_FORWARDS:
            self._reply(handle, *BUSY)
            return
        op = dict(op)
        fid = f"{self._forward_prefix}.{next(self._forward_seq)}"
        if op["f"] != "get" and op.get("request_id") is None:
            # The state machine's at-most-once table then covers the forward too.
            op["request_id"] = f"fwd-{self.config.id}-{fid}"
        self.forwards[fid] = Forward(handle, leader, op)
        self.forward_of[handle] = fid
        self._send_forward(fid)

    def _send_forward(self, fid: str) -> None:
        fwd = self.forwards[fid]
        self.counters["forwards_sent"] += 1
        self.messages.append({"type": m.FORWARD, "src": self.config.id, "dst": fwd.to,
                              "term": self.core.term, "id": fid, "op": fwd.op})

    def _on_forward(self, msg: dict) -> None:
        src, fid, op = msg["src"], msg.get("id"), msg.get("op")
        if src not in self.core.others or not isinstance(fid, str):
            return
        seen = (src, fid)
        if seen in self._forwards_seen:
            return  # a duplicate: the first copy's answer is the answer
        self._forwards_seen[seen] = None
        if len(self._forwards_seen) > FORWARD_MEMORY:
            del self._forwards_seen[next(iter(self._forwards_seen))]
        if len(self.serving) >= MAX_FORWARDS:
            self._send_forward_resp(src, fid, *BUSY)
            return
        handle = next(self._serving_handles)
        self.serving[handle] = (src, fid)
        self.counters["forwards_served"] += 1
        self._open(handle, op)

    def _send_forward_resp(self, dst: str, fid: str, status: int, body: dict) -> None:
        self.messages.append({"type": m.FORWARD_RESP, "src": self.config.id, "dst": dst,
                              "term": self.core.term, "id": fid, "status": status, "body": dict(body)})

    def _on_forward_resp(self, msg: dict) -> None:
        fwd = self.forwards.get(msg.get("id"))
        status, body = msg.get("status"), msg.get("body")
        if fwd is None or msg["src"] != fwd.to or not isinstance(status, int) or not isinstance(body, dict):
            return  # answered already (or timed out), or an answer to an earlier copy
        newer = body.get("leader")
        if status == 503 and body.get("error") == "not-leader" and fwd.attempts < FORWARD_ATTEMPTS:
            # Refused, so it reached no log: ask the leader the refuser names, or
            # wait for one like any request that finds no leader.
            if isinstance(newer, str) and newer in self.core.others and newer != fwd.to:
                fwd.to, fwd.attempts = newer, fwd.attempts + 1
                self._send_forward(msg["id"])
            elif newer is None:
                del self.forwards[msg["id"]], self.forward_of[fwd.handle]
                self._not_leader(fwd.handle, fwd.op, stale=(fwd.to, self.core.term))
            else:
                self._reply(fwd.handle, status, {**body, "served_by": msg["src"]})
            return
        # Which node served it, for a client that records where each operation ran.
        self._reply(fwd.handle, status, {**body, "served_by": msg["src"]})

    # ---- bookkeeping after every event ---------------------------------------

    def _after_event(self) -> None:
        core = self.core
        if self.held and (core.role == LEADER or core.leader not in (None, self.config.id)):
            held, self.held = self.held, {}
            for handle, h in held.items():
                if core.role == LEADER or (core.leader, core.term) != h.stale:
                    self._start(handle, h.op)
                else:
                    self.held[handle] = h
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
            if entry["kind"] == CONFIG:
                outcome = Outcome(200, {**entry["data"], "config_index": self.applied})
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
                "members": list(core.membership_at(self.applied).voters),
                "config": core.membership_at(self.applied).to_json(),
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
        self.held.pop(handle, None)
        fid = self.forward_of.pop(handle, None)
        if fid is not None:
            del self.forwards[fid]
        origin = self.serving.pop(handle, None)
        if origin is not None:
            self._send_forward_resp(*origin, status, body)
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
            messages=self.core.take_outbox() + self.messages,
            replies=self.replies,
        )
        self.replies, self.messages = [], []
        return rd

    def advance(self, rd: Ready) -> None:
        """The driver has persisted `rd` and sent its messages and replies."""
        # Everything is handed over in ready(); nothing waits for this yet. The
        # call stays in the contract so that asynchronous persistence can be
        # added without changing drivers.

    def status(self) -> dict:
        """{"id", "role", "term", "leader", "commit_index", "applied_index", "last_log_index", "voters",
        "learners", "member"}: the last three from the latest configuration this node holds (member: this
        node's place in it, "voter", "learner" or "removed")."""
        core = self.core
        conf = core.membership
        return {
            "id": self.config.id,
            "role": core.role,
            "term": core.term,
            "leader": core.leader,
            "commit_index": core.commit,
            "applied_index": self.applied,
            "last_log_index": core.log.last_index(),
            "voters": list(conf.voters),
            "learners": list(conf.learners),
            "member": conf.role_of(self.config.id),
        }

    def membership(self) -> dict:
        """What GET /membership answers: this node's latest configuration and whether it knows it committed."""
        core = self.core
        conf, index = core.membership, core.configs.latest_index
        return {"id": self.config.id, "voters": list(conf.voters), "learners": list(conf.learners),
                "member": conf.role_of(self.config.id), "config_index": index, "committed": index <= core.commit,
                "role": core.role, "term": core.term, "leader": core.leader}

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
            "membership_changes": c.membership_changes,
            "removed_stepdowns": c.removed_stepdowns,
            "voters": len(core.membership.voters),
            "messages_rejected_stale_term": c.messages_rejected_stale_term,
            "term": core.term,
            "is_leader": 1 if core.role == LEADER else 0,
            "commit_index": core.commit,
            "applied_index": self.applied,
            "last_log_index": core.log.last_index(),
            "snapshot_index": core.log.snap_index,
            "pending_requests": len(self.deadlines),
            "forwards_open": len(self.forwards),
            **self.counters,
        }
