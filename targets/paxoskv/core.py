"""The sans-IO Multi-Paxos core: a distinguished proposer, phase 1 once for all slots, phase 2 per slot.

As in "Paxos Made Simple" (section 3) and "Paxos Made Live": every node is an
acceptor; the node that leads is the one proposer. A node that has heard no
leader for a randomized takeover timeout picks a ballot above every ballot it
has seen and runs phase 1 for all slots above its commit index at once
(prepare / promise). With promises from a quorum it re-proposes, in every
open slot, the value accepted there with the highest ballot among the
promises, fills the slots nobody accepted with no-ops, and from then on runs
phase 2 alone (accept / accepted) per slot for each new client write. A slot
is chosen when a quorum has accepted it in the leader's ballot; the leader's
commit index is the prefix of chosen slots. Acceptors persist their promise
and their accepted values before they answer (the node's Ready: persist,
then send).

Ballots are integers owned by one node each: ballot b belongs to member
(b - 1) mod N (members sorted), so two nodes never lead with the same ballot
and the ballot serves as the "term" that raftkv's status and the harness's
checkers read. A leader's heartbeat is an empty accept; its answers confirm
ReadIndex-style reads (a quorum round) and, behind a flag, a lease: an
acceptor that has heard the leader within the minimum takeover timeout
refuses to promise anybody else, so a lease shorter than that is safe.

It answers the calls targets/raftkv/node.py makes of raftkv's core (propose,
read_index, lease_valid, committed_in_term, compact, take_*), so the same
node, server and simulator drive it. Time is a tick count, messages are dicts
in `self.outbox`; nothing here reads a clock or touches a socket.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from targets.paxoskv import messages as m
from targets.raftkv.core import SEQ_MEMORY, CoreConfig, CoreCounters, PendingRead
from targets.raftkv.membership import ConfigHistory, Membership

FOLLOWER, CANDIDATE, LEADER = "follower", "candidate", "leader"

__all__ = ["CANDIDATE", "FOLLOWER", "LEADER", "CoreConfig", "PaxosCore", "SlotLog", "ballot_owner",
           "next_ballot"]


def next_ballot(above: int, index: int, members: int) -> int:
    """The smallest ballot above `above` that belongs to the member at `index` (of `members`)."""
    b = (above // members) * members + index + 1
    return b if b > above else b + members


def ballot_owner(ballot: int, members: tuple[str, ...]) -> str | None:
    """The member that may propose in `ballot` (None for 0, no ballot)."""
    return members[(ballot - 1) % len(members)] if ballot > 0 else None


class SlotLog:
    """Accepted values by slot above the last snapshot; slots may have gaps (a lost accept)."""

    def __init__(self, snap_index: int = 0, snap_term: int = 0, entries: list[dict] | None = None):
        self.snap_index = snap_index
        self.snap_term = snap_term
        self.slots: dict[int, dict] = {}
        self._last = snap_index
        for e in entries or []:
            if e["index"] > snap_index:
                self.put(e)

    def last_index(self) -> int:
        return self._last

    def has(self, index: int) -> bool:
        return index in self.slots

    def entry(self, index: int) -> dict:
        return self.slots[index]

    def term_at(self, index: int) -> int | None:
        """The ballot that first proposed the value at index (its identity); None if absent."""
        if index == self.snap_index:
            return self.snap_term
        e = self.slots.get(index)
        return None if e is None else e["term"]

    def ballot_at(self, index: int) -> int | None:
        """The ballot the value at index was last accepted in; None if absent."""
        e = self.slots.get(index)
        return None if e is None else e["ballot"]

    def put(self, entry: dict) -> None:
        self.slots[entry["index"]] = entry
        if entry["index"] > self._last:
            self._last = entry["index"]

    def from_slot(self, index: int) -> list[dict]:
        """Every accepted value at slot index or above, in slot order."""
        return [self.slots[i] for i in sorted(i for i in self.slots if i >= index)]

    def compact(self, index: int, term: int) -> None:
        """Forget the slots up to index, which a snapshot now covers; keep what lies above."""
        if index <= self.snap_index:
            return
        self.slots = {i: e for i, e in self.slots.items() if i > index}
        self.snap_index, self.snap_term = index, term
        self._last = max(self._last, index)


@dataclass
class Progress:
    """The leader's view of one acceptor (raftkv's, less what Paxos does not need)."""

    match: int = 0  # the acceptor holds every slot up to here in this ballot (or knows it chosen)
    next: int = 1
    acked_seq: int = 0
    ack_tick: float = float("-inf")
    active: bool = False
    snapshot_sent_at: int | None = None


class PaxosCore:
    @property
    def membership(self) -> Membership:
        return self.configs.latest

    def membership_at(self, index: int) -> Membership:
        return self.configs.latest

    def is_voter(self) -> bool:
        return True

    def propose_change(self, action: str, member: str) -> str:
        """paxoskv has no membership changes: every member is a voter for good, so asking for a voter
        back (what raftkv's simulator does at its final heal) is unchanged, and anything else refused."""
        if self.role != LEADER:
            return "not-leader"
        if member not in self.members:
            return "unknown-node"
        if action in ("add-learner", "promote"):
            return "unchanged"
        return "membership-changes-unsupported"

    def __init__(
        self,
        cfg: CoreConfig,
        rng: random.Random,
        hard_state: dict | None = None,
        snapshot: dict | None = None,
        entries: list[dict] | None = None,
    ):
        self.cfg = cfg
        self.rng = rng
        self.others = tuple(p for p in cfg.peers if p != cfg.id)
        self.members = tuple(sorted(cfg.peers))
        self.my_index = self.members.index(cfg.id)
        hs = hard_state or {}
        self.restarted = hard_state is not None
        self.snapshot = snapshot
        base_index, base_term = (snapshot["index"], snapshot["term"]) if snapshot else (0, 0)
        self.log = SlotLog(base_index, base_term, entries)
        # The acceptor's promise: it accepts nothing below it. Its "term" for status and checkers.
        self.promised: int = hs.get("term", 0)
        if "promise-not-persisted" in cfg.bugs:
            # The bug: the promise lived in memory only, so a restart begins with none.
            self.promised = 0
        self.commit: int = min(max(hs.get("commit", 0), self.log.snap_index), self.log.last_index())
        self.max_seen = self.promised  # the highest ballot heard of: a new one must be above it

        self.role = FOLLOWER
        self.leader: str | None = None
        self.ballot = 0  # the ballot this node leads or campaigns in
        self.now = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = self._random_timeout()
        self.promises: dict[str, dict] = {}  # a candidate's: who promised, with what they had accepted
        self.refused: set[str] = set()
        self.progress: dict[str, Progress] = {}
        self.recovered_upto = 0  # a new leader's last re-proposed slot: reads wait until it is chosen
        # The acceptor's run of slots accepted in prefix_ballot, from its commit index to prefix.
        self.prefix_ballot = 0
        self.prefix = self.commit
        self.seq = 0
        self.seq_sent_tick: dict[int, int] = {}
        self.transferee: str | None = None  # paxoskv has no leadership transfer; the node reads this
        self.lease_revoked = False
        self.pending_reads: list[PendingRead] = []
        self.reads_awaiting_term_commit: list[int] = []
        self.counters = CoreCounters()
        # A fixed membership (paxoskv has no membership changes): raftkv's node, which paxoskv runs,
        # names the configuration in its status, snapshots and GET /membership.
        self.configs = ConfigHistory(base_index, Membership(self.members))

        # Outputs, drained by the node into a Ready.
        self.outbox: list[dict] = []
        self.dirty: set[int] = set()  # slots written since the last take_unstable
        self.snapshot_to_persist: dict | None = None
        self.snapshot_to_restore: dict | None = None
        self.reads_confirmed: list[tuple[int, int]] = []
        self.reads_failed: list[int] = []
        self.persisted_hard_state = self._hard_state_tuple()

    # ---- small queries ------------------------------------------------------

    @property
    def term(self) -> int:
        """The promised ballot: what /status reports as the term (a leader's is its own ballot)."""
        return self.promised

    def _random_timeout(self) -> int:
        lo, hi = self.cfg.election_ticks
        return self.rng.randint(lo, hi)

    def _hard_state_tuple(self) -> tuple:
        return (self.promised, self.commit)

    def committed_in_term(self) -> bool:
        """Has this leader chosen every slot it re-proposed (so its commit index is current)?"""
        return self.role == LEADER and self.commit >= self.recovered_upto

    def check_quorum_enabled(self) -> bool:
        return "stale-lease-read" not in self.cfg.bugs

    def lease_valid(self) -> bool:
        """May this leader serve a read from local state without a quorum round?"""
        if self.role != LEADER or self.lease_revoked:
            return False
        if "stale-lease-read" in self.cfg.bugs:
            return True  # the bug: the lease is taken for granted, never checked against the acks
        ticks = sorted([self.now] + [self.progress[p].ack_tick for p in self.others], reverse=True)
        return self.now < ticks[self.cfg.quorum - 1] + self.cfg.lease_ticks

    def _in_lease(self) -> bool:
        """Does this acceptor still honour a leader's lease (and so refuse to promise anybody else)?"""
        if self.role == LEADER:
            return True
        if self.restarted and self.now < self.cfg.election_ticks[0]:
            # Just restarted: it may have answered a heartbeat moments before crashing, and a
            # lease may count on that answer.
            return True
        return self.leader is not None and self.election_elapsed < self.cfg.election_ticks[0]

    # ---- role changes -------------------------------------------------------

    def _set_leader(self, leader: str | None) -> None:
        if leader is not None and leader != self.leader:
            self.counters.leader_changes += 1
        self.leader = leader

    def _become_follower(self, leader: str | None) -> None:
        was_leader = self.role == LEADER
        self.role = FOLLOWER
        self._set_leader(leader)
        self.election_elapsed = 0
        self.randomized_timeout = self._random_timeout()
        self.promises, self.refused = {}, set()
        if was_leader:
            self.reads_failed.extend(r.ctx for r in self.pending_reads)
            self.reads_failed.extend(self.reads_awaiting_term_commit)
            self.pending_reads, self.reads_awaiting_term_commit = [], []
            self.progress = {}

    def _promise(self, ballot: int) -> None:
        self.promised = max(self.promised, ballot)
        self.max_seen = max(self.max_seen, ballot)

    def _campaign(self) -> None:
        """Phase 1a: a ballot above any seen, for every slot above our commit index."""
        self.election_elapsed = 0
        self.randomized_timeout = self._random_timeout()
        self._set_leader(None)
        self.role = CANDIDATE
        self.ballot = next_ballot(max(self.promised, self.max_seen), self.my_index, len(self.members))
        self._promise(self.ballot)
        self.counters.elections_started += 1
        from_slot = self.commit + 1
        self.promises = {self.cfg.id: self._promise_body(from_slot)}
        self.refused = set()
        if self._tally():
            return  # a cluster of one
        for peer in self.others:
            self._send(peer, m.PREPARE, ballot=self.ballot, from_slot=from_slot)

    def _promise_body(self, from_slot: int) -> dict:
        snap = self.snapshot if self.snapshot is not None and from_slot <= self.log.snap_index else None
        return {"commit": self.commit, "entries": [dict(e) for e in self.log.from_slot(from_slot)],
                "snapshot": snap}

    def _tally(self) -> bool:
        if len(self.promises) >= self.cfg.quorum:
            self._become_leader()
            return True
        if len(self.refused) >= self.cfg.quorum:
            self._become_follower(None)
        return False

    def _become_leader(self) -> None:
        """Phase 1 is done: take over every open slot with the value its promises force on us."""
        promises, self.promises = self.promises, {}
        self.role = LEADER
        self._set_leader(self.cfg.id)
        self.counters.became_leader += 1
        if "ignore-accepted" in self.cfg.bugs:
            # The bug: what the acceptors reported is thrown away; only our own log counts.
            promises = {self.cfg.id: promises[self.cfg.id]}
        snaps = [p["snapshot"] for p in promises.values() if p.get("snapshot")]
        best = max(snaps, key=lambda s: s["index"], default=None)
        if best is not None and best["index"] > self.commit:
            self._install(best)
        chosen = max([self.commit] + [p["commit"] for p in promises.values()])
        base = max(self.commit, self.log.snap_index)
        highest: dict[int, dict] = {}  # slot -> the value accepted there in the highest ballot
        for p in promises.values():
            for e in p["entries"]:
                s = e["index"]
                if s > base and (s not in highest or e["ballot"] > highest[s]["ballot"]):
                    highest[s] = e
        top = max([base] + list(highest))
        for s in range(base + 1, top + 1):
            e = highest.get(s)
            if e is None:
                e = {"term": self.ballot, "kind": m.NOOP, "data": None}  # nobody accepted a value here
            self._put({"index": s, "term": e["term"], "ballot": self.ballot, "kind": e["kind"], "data": e["data"]})
        # Every slot a promiser had chosen holds, in any quorum, its chosen value in the highest ballot.
        self.commit = max(self.commit, min(chosen, top))
        self.recovered_upto = top
        self.prefix_ballot, self.prefix = self.ballot, top
        self.lease_revoked = False
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.progress = {}
        for peer in self.others:
            known = promises.get(peer)
            pr = Progress()
            if known is not None:
                pr.match = min(known["commit"], top)
                pr.next = known["commit"] + 1
            else:
                pr.next = top + 1  # optimistic: an acceptor that is behind says so (gap)
            self.progress[peer] = pr
        self._start_heartbeat_round()
        self._maybe_commit()

    def _put(self, entry: dict) -> None:
        self.log.put(entry)
        self.dirty.add(entry["index"])

    def _install(self, snap: dict) -> None:
        """Take a snapshot as our state up to its index (from the leader, or from a promise)."""
        self.counters.snapshots_installed += 1
        self.log.compact(snap["index"], snap["term"])
        self.snapshot = snap
        self.snapshot_to_persist = snap
        self.snapshot_to_restore = snap
        self.dirty = {s for s in self.dirty if s > snap["index"]}
        self.commit = max(self.commit, snap["index"])
        self.prefix = max(self.prefix, snap["index"])

    # ---- ticks --------------------------------------------------------------

    def leader_link_lost(self, peer: str) -> None:
        """Ignored: raftkv campaigns early when its leader's connection closes, but two Paxos
        proposers that time out together duel over ballots (there is no PreVote tie-break here),
        so a paxoskv follower keeps its random timeout."""

    def tick(self) -> None:
        self.now += 1
        self.election_elapsed += 1
        if self.role == LEADER:
            self._tick_leader()
        elif self.election_elapsed >= self.randomized_timeout:
            self._campaign()

    def _tick_leader(self) -> None:
        if self.election_elapsed >= self.cfg.election_ticks[0]:
            self.election_elapsed = 0
            if self.check_quorum_enabled():
                active = 1 + sum(1 for p in self.others if self.progress[p].active)
                if active < self.cfg.quorum:
                    self.counters.check_quorum_stepdowns += 1
                    self._become_follower(None)
                    return
            for p in self.others:
                self.progress[p].active = False
        self.heartbeat_elapsed += 1
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks:
            self._start_heartbeat_round()

    def _start_heartbeat_round(self) -> None:
        self.heartbeat_elapsed = 0
        self.seq += 1
        self.seq_sent_tick[self.seq] = self.now
        self.seq_sent_tick.pop(self.seq - SEQ_MEMORY, None)
        for peer in self.others:
            self._send_accept(peer)
        self._confirm_reads()

    # ---- proposals and reads ------------------------------------------------

    def propose(self, kind: str, data) -> tuple[int, int] | None:
        """Phase 2 for a new value in the next free slot, if leading; returns (slot, ballot)."""
        if self.role != LEADER:
            return None
        slot = self.log.last_index() + 1
        self._put({"index": slot, "term": self.ballot, "ballot": self.ballot, "kind": kind, "data": data})
        self._maybe_commit()  # a cluster of one
        return slot, self.ballot

    def read_index(self, ctx: int) -> None:
        """A linearizable read: at the commit index, once a quorum round confirms we still lead."""
        if self.role != LEADER:
            self.reads_failed.append(ctx)
        elif not self.committed_in_term():
            self.reads_awaiting_term_commit.append(ctx)
        else:
            self.pending_reads.append(PendingRead(ctx, self.seq + 1, self.commit))

    def _confirm_reads(self) -> None:
        while self.pending_reads:
            read = self.pending_reads[0]
            if read.seq > self.seq:
                return
            acks = 1 + sum(1 for p in self.others if self.progress[p].acked_seq >= read.seq)
            if acks < self.cfg.quorum:
                return
            self.pending_reads.pop(0)
            self.reads_confirmed.append((read.ctx, read.index))

    def flush(self) -> None:
        """Send what accumulated: a quorum round for new reads, new slots to acceptors."""
        if self.role != LEADER:
            return
        if self.pending_reads and self.pending_reads[-1].seq > self.seq:
            self._start_heartbeat_round()
            return
        last = self.log.last_index()
        for peer in self.others:
            pr = self.progress[peer]
            if pr.next <= last and not self._awaiting_snapshot(pr):
                self._send_accept(peer)

    def transfer_leadership(self, to: str) -> None:
        """Not in paxoskv: a leader change is a takeover (kill or isolate the leader)."""

    # ---- sending ------------------------------------------------------------

    def _send(self, dst: str, kind: str, **fields) -> None:
        msg = {"type": kind, "src": self.cfg.id, "dst": dst, "term": self.promised}
        msg.update(fields)
        self.outbox.append(msg)

    def _send_accept(self, peer: str) -> None:
        pr = self.progress[peer]
        if pr.next <= self.log.snap_index:
            self._send_snapshot(peer)
            return
        hi = min(self.log.last_index() + 1, pr.next + self.cfg.max_batch)
        entries = [] if self._awaiting_snapshot(pr) else [self.log.entry(s) for s in range(pr.next, hi)]
        self._send(peer, m.ACCEPT, ballot=self.ballot, lo=pr.next, entries=entries, commit=self.commit,
                   seq=self.seq)
        pr.next += len(entries)  # optimistic: pipeline the next batch

    def _awaiting_snapshot(self, pr: Progress) -> bool:
        return pr.snapshot_sent_at is not None and self.now - pr.snapshot_sent_at < self.cfg.election_ticks[0]

    def _send_snapshot(self, peer: str) -> None:
        assert self.snapshot is not None, "slots compacted without a snapshot"
        pr = self.progress[peer]
        pr.next = self.snapshot["index"] + 1
        if self._awaiting_snapshot(pr):
            self._send(peer, m.ACCEPT, ballot=self.ballot, lo=pr.next, entries=[], commit=self.commit,
                       seq=self.seq)
            return
        pr.snapshot_sent_at = self.now
        self.counters.snapshots_sent += 1
        self._send(peer, m.INSTALL, ballot=self.ballot, snapshot=self.snapshot, seq=self.seq)

    # ---- receiving ----------------------------------------------------------

    def step(self, msg: dict) -> None:
        if msg.get("src") not in self.others:
            return  # not a member: it has no say in this cluster
        handler = {
            m.PREPARE: self._on_prepare,
            m.PROMISE: self._on_promise,
            m.ACCEPT: self._on_accept,
            m.INSTALL: self._on_accept,
            m.ACCEPTED: self._on_accepted,
        }.get(msg["type"])
        if handler is not None:
            handler(msg)

    def _on_prepare(self, msg: dict) -> None:
        b, src = msg["ballot"], msg["src"]
        self.max_seen = max(self.max_seen, b)
        if b > self.promised and not self._in_lease():
            self._promise(b)
            self._become_follower(None)
            self._send(src, m.PROMISE, ballot=b, granted=True, **self._promise_body(msg["from_slot"]))
            return
        # Refused: promised higher already, or still honouring a live leader's lease.
        self._send(src, m.PROMISE, ballot=b, granted=False, promised=self.promised, leader=self.leader)

    def _on_promise(self, msg: dict) -> None:
        if not msg["granted"]:
            self.max_seen = max(self.max_seen, msg.get("promised") or 0)
        if self.role != CANDIDATE or msg["ballot"] != self.ballot:
            return
        if msg["granted"]:
            self.promises.setdefault(msg["src"], msg)
        else:
            self.refused.add(msg["src"])
        self._tally()

    def _on_accept(self, msg: dict) -> None:
        """Phase 2b (and a heartbeat, and an installed snapshot): accept unless promised higher."""
        b, src, seq = msg["ballot"], msg["src"], msg.get("seq", 0)
        if b < self.promised:
            self.counters.messages_rejected_stale_term += 1
            self._send(src, m.ACCEPTED, ballot=b, ok=False, promised=self.promised, seq=seq)
            return
        if self.role == LEADER and b == self.ballot:
            return  # only we propose in our ballot
        self._promise(b)
        if self.role != FOLLOWER:
            self._become_follower(src)
        self._set_leader(src)
        self.election_elapsed = 0
        if self.prefix_ballot != b:
            self.prefix_ballot, self.prefix = b, max(self.commit, self.log.snap_index)
        if msg["type"] == m.INSTALL:
            snap = msg["snapshot"]
            if snap["index"] > self.commit:
                self._install(snap)
            lo = self.prefix + 1
        else:
            lo = msg["lo"]
            for e in msg["entries"]:
                held = self.log.slots.get(e["index"])
                if held is not None and (held["ballot"], held["term"]) == (b, e["term"]):
                    continue  # a resent or duplicated accept: this very value is on disk already
                if e["index"] > self.commit:
                    self._put({"index": e["index"], "term": e["term"], "ballot": b, "kind": e["kind"],
                               "data": e["data"]})
        while self.log.ballot_at(self.prefix + 1) == b:
            self.prefix += 1
        if msg.get("commit", 0) > self.commit:
            self.commit = max(self.commit, min(msg["commit"], self.prefix))
        self._send(src, m.ACCEPTED, ballot=b, ok=True, match=self.prefix, gap=self.prefix < lo - 1, seq=seq)

    def _on_accepted(self, msg: dict) -> None:
        if not msg["ok"]:
            self.max_seen = max(self.max_seen, msg["promised"])
            if self.role == LEADER and msg["promised"] > self.ballot:
                # Preempted: an acceptor promised a higher ballot, so our proposals may never be chosen.
                self._become_follower(None)
            return
        if self.role != LEADER or msg["ballot"] != self.ballot:
            return
        src = msg["src"]
        pr = self.progress[src]
        pr.active = True
        seq = msg.get("seq", 0)
        if seq > pr.acked_seq:
            pr.acked_seq = seq
            sent = self.seq_sent_tick.get(seq)
            if sent is not None and sent > pr.ack_tick:
                pr.ack_tick = sent
            self._confirm_reads()
        if msg["match"] > pr.match:
            pr.match = msg["match"]
            self._maybe_commit()
        if self.snapshot is not None and pr.match >= self.snapshot["index"]:
            pr.snapshot_sent_at = None
        if msg["gap"] and msg["match"] >= pr.match and not self._awaiting_snapshot(pr):
            pr.next = msg["match"] + 1  # it lacks slots before what we sent: resend from there
            self._send_accept(src)
        else:
            pr.next = max(pr.next, pr.match + 1)

    def _maybe_commit(self) -> None:
        if self.role != LEADER:
            return
        matches = sorted([self.log.last_index()] + [p.match for p in self.progress.values()], reverse=True)
        n = min(matches[self.cfg.quorum - 1], self.log.last_index())
        if n <= self.commit:
            return
        had = self.committed_in_term()
        self.commit = n
        if not had and self.committed_in_term():
            for ctx in self.reads_awaiting_term_commit:
                self.pending_reads.append(PendingRead(ctx, self.seq + 1, self.commit))
            self.reads_awaiting_term_commit = []

    # ---- snapshots and persistence bookkeeping -----------------------------

    def compact(self, snapshot: dict) -> None:
        """The state machine took `snapshot` at an applied index: drop the slots it covers."""
        if snapshot["index"] <= self.log.snap_index or snapshot["index"] > self.commit:
            return
        self.log.compact(snapshot["index"], snapshot["term"])
        self.snapshot = snapshot
        self.snapshot_to_persist = snapshot

    def take_hard_state(self) -> dict | None:
        hs = self._hard_state_tuple()
        if hs == self.persisted_hard_state:
            return None
        self.persisted_hard_state = hs
        return {"term": hs[0], "commit": hs[1]}

    def take_unstable(self) -> tuple[int | None, list[dict], dict | None]:
        """(None: slots are never truncated, changed slots, snapshot) not yet handed to the driver."""
        snap, self.snapshot_to_persist = self.snapshot_to_persist, None
        entries = [dict(self.log.entry(s)) for s in sorted(self.dirty) if self.log.has(s)]
        self.dirty = set()
        return None, entries, snap

    def take_outbox(self) -> list[dict]:
        out, self.outbox = self.outbox, []
        return out
