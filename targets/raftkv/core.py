"""The sans-IO Raft core: elections, replication, commitment, ReadIndex, leases, transfer, snapshots.

Follows the Raft paper and Ongaro's dissertation: randomized election timeouts,
PreVote (asked again each tick of a peer that has not answered, and of two
simultaneous PreCandidates one yields, so that a dead leader's followers do not
split their votes), CheckQuorum, log replication with the consistency check and fast
back-off, commitment only by counting replicas of current-term entries (the
Figure 8 rule), a no-op at the start of each term, ReadIndex reads, optional
leases, leadership transfer with TimeoutNow, snapshots and InstallSnapshot, and single-server membership changes with learners
(membership.py).

It knows nothing of the world: time is a tick count, messages are dicts put in
`self.outbox`, and what must be persisted is tracked so the node can hand it to
the driver in a Ready. `cfg.peers` is the address book, every node this one may
ever talk to; who of them votes, and who only replicates (a learner), is the
latest configuration in the log (membership.py). Quorums are counted over its
voters only: a leader that a change removed leads on without counting itself
until the change commits, then hands over and steps down.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from targets.raftkv import messages as m
from targets.raftkv.membership import (
    CONFIG,
    ConfigHistory,
    Membership,
    plan_change,
    snapshot_membership,
)

FOLLOWER, PRECANDIDATE, CANDIDATE, LEADER = "follower", "precandidate", "candidate", "leader"

# How many heartbeat rounds we remember the send time of; an answer to an
# older round is too old to extend a lease anyway.
SEQ_MEMORY = 512


@dataclass(frozen=True)
class CoreConfig:
    """The core's view of NodeConfig, with every time already in ticks."""

    id: str
    peers: tuple[str, ...]
    election_ticks: tuple[int, int]
    heartbeat_ticks: int
    bugs: frozenset[str] = frozenset()
    max_batch: int = 256  # entries per append message
    # ...and about this many bytes of entry data (always at least one entry), as etcd's MaxSizePerMsg:
    # 256 entries of 240 KB made one 60 MB append, which a follower took hundreds of ms to write and
    # fsync, answering nothing meanwhile, and the leader stepped down for want of a quorum (issue 17).
    max_append_bytes: int = 1 << 20

    @property
    def quorum(self) -> int:
        """The quorum of the initial configuration (every peer a voter)."""
        return len(self.peers) // 2 + 1

    @property
    def lease_ticks(self) -> int:
        # Followers refuse votes for election_lo ticks after hearing the leader,
        # so the leader may trust its lease a little less than that: the margin
        # absorbs clock-rate drift between nodes.
        lo = self.election_ticks[0]
        return max(1, lo - max(1, lo // 5))


def approx_size(value, cap: int) -> int:
    """About how many bytes value takes as JSON, counting no further than cap.

    Cheap where it matters: a string counts by its length, O(1) however long,
    and the walk stops once cap is passed, so neither a huge nor a deeply
    nested value costs more than a few steps per counted byte. Strings count
    once per character, as ASCII: an estimate for bounding messages, not an
    encoder."""
    total, stack = 0, [value]
    while stack and total <= cap:
        v = stack.pop()
        if isinstance(v, str):
            total += len(v) + 2
        elif isinstance(v, dict):
            total += 2 + 4 * len(v)
            for k, x in v.items():
                if total > cap:
                    break
                total += len(k) if isinstance(k, str) else 8
                stack.append(x)
        elif isinstance(v, list | tuple):
            total += 2 + len(v)
            for x in v:
                if total > cap:
                    break
                stack.append(x)
        else:
            total += 8  # a number, true, false, null
    return total


class RaftLog:
    """The log after the last snapshot: entries[i] has index snap_index + 1 + i."""

    def __init__(self, snap_index: int = 0, snap_term: int = 0, entries: list[dict] | None = None):
        self.snap_index = snap_index
        self.snap_term = snap_term
        self.entries: list[dict] = []
        for e in entries or []:
            if e["index"] == self.last_index() + 1:
                self.entries.append(e)
            elif e["index"] > self.last_index() + 1:
                raise ValueError(f"log has a gap before index {e['index']}")

    def last_index(self) -> int:
        return self.snap_index + len(self.entries)

    def last_term(self) -> int:
        return self.entries[-1]["term"] if self.entries else self.snap_term

    def term_at(self, index: int) -> int | None:
        """The term of the entry at index; None if compacted away (below the snapshot) or absent."""
        if index == self.snap_index:
            return self.snap_term
        if index < self.snap_index or index > self.last_index():
            return None
        return self.entries[index - self.snap_index - 1]["term"]

    def entry(self, index: int) -> dict:
        return self.entries[index - self.snap_index - 1]

    def slice(self, lo: int, hi: int) -> list[dict]:
        """Entries with lo <= index < hi (lo must be above the snapshot)."""
        return self.entries[lo - self.snap_index - 1 : hi - self.snap_index - 1]

    def truncate_from(self, index: int) -> None:
        del self.entries[index - self.snap_index - 1 :]

    def append(self, entries: list[dict]) -> None:
        self.entries.extend(entries)

    def first_index_of_term_at(self, index: int) -> int:
        """The first index (above the snapshot) holding the same term as `index`."""
        term = self.term_at(index)
        while index - 1 > self.snap_index and self.term_at(index - 1) == term:
            index -= 1
        return index

    def last_index_of_term(self, term: int, at_most: int) -> int | None:
        """The last index <= at_most whose entry has exactly `term`, if any."""
        index = min(at_most, self.last_index())
        while index > self.snap_index:
            t = self.term_at(index)
            if t == term:
                return index
            if t < term:
                return None
            index -= 1
        return None

    def compact(self, index: int, term: int) -> None:
        """Forget entries up to index, which a snapshot now covers."""
        if index <= self.snap_index:
            return
        self.entries = self.entries[index - self.snap_index :] if index <= self.last_index() else []
        self.snap_index, self.snap_term = index, term


@dataclass
class Progress:
    """The leader's view of one follower."""

    match: int = 0
    next: int = 1
    acked_seq: int = 0  # the latest heartbeat round this follower answered
    ack_tick: float = float("-inf")  # when that round was sent (a lower bound on its contact)
    active: bool = False  # heard from since the last CheckQuorum
    snapshot_sent_at: int | None = None  # tick a snapshot went out, until it is acknowledged


@dataclass(frozen=True)
class PendingRead:
    ctx: int
    seq: int  # the heartbeat round that must reach a quorum
    index: int  # the commit index when the read arrived


@dataclass
class CoreCounters:
    prevotes_started: int = 0
    elections_started: int = 0
    leader_changes: int = 0
    became_leader: int = 0
    check_quorum_stepdowns: int = 0
    snapshots_sent: int = 0
    snapshots_installed: int = 0
    messages_rejected_stale_term: int = 0
    transfers_started: int = 0
    membership_changes: int = 0  # configuration entries appended as leader
    removed_stepdowns: int = 0  # led until its own removal committed, then stepped down


class RaftCore:
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
        self.others = tuple(p for p in cfg.peers if p != cfg.id)  # the address book, less this node
        hs = hard_state or {}
        self.restarted = hard_state is not None  # a first start has acknowledged nobody
        self.term: int = hs.get("term", 0)
        self.voted_for: str | None = hs.get("voted_for")
        if "no-persist-vote" in cfg.bugs:
            self.voted_for = None  # it was never written, so it cannot be read back
        self.snapshot = snapshot
        base_index, base_term = (snapshot["index"], snapshot["term"]) if snapshot else (0, 0)
        self.log = RaftLog(base_index, base_term, [e for e in entries or [] if e["index"] > base_index])
        base_conf = snapshot_membership(snapshot, cfg.peers) if snapshot else Membership(tuple(cfg.peers))
        self.configs = ConfigHistory(base_index, base_conf)
        for e in self.log.entries:
            self.configs.appended(e)
        self.commit: int = min(max(hs.get("commit", 0), self.log.snap_index), self.log.last_index())

        self.role = FOLLOWER
        self.leader: str | None = None
        self.now = 0  # ticks since start
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = self._random_timeout()
        self.leader_link_down = False  # see leader_link_lost
        self.votes: dict[str, bool] = {}
        self.progress: dict[str, Progress] = {}
        self.seq = 0
        self.seq_sent_tick: dict[int, int] = {}
        self.transferee: str | None = None
        self.transfer_elapsed = 0
        # Set once this leader has asked somebody to take over: the target's
        # forced election ignores leases, so ours is void for the rest of the term
        # (reads fall back to ReadIndex), even if the handover seems to fail.
        self.lease_revoked = False
        self.pending_reads: list[PendingRead] = []
        self.reads_awaiting_term_commit: list[int] = []
        # The configuration index whose removed nodes this leader stopped replicating to (_after_commit).
        self._pruned_at = -1
        self.counters = CoreCounters()

        # Outputs, drained by the node into a Ready.
        self.outbox: list[dict] = []
        self.unstable_from = self.log.last_index() + 1
        self.pending_truncate: int | None = None
        self.snapshot_to_persist: dict | None = None
        self.snapshot_to_restore: dict | None = None
        self.reads_confirmed: list[tuple[int, int]] = []  # (ctx, read index)
        self.reads_failed: list[int] = []
        self.persisted_hard_state = self._hard_state_tuple()

    # ---- small queries ------------------------------------------------------

    def _random_timeout(self) -> int:
        lo, hi = self.cfg.election_ticks
        return self.rng.randint(lo, hi)

    def _hard_state_tuple(self) -> tuple:
        voted = None if "no-persist-vote" in self.cfg.bugs else self.voted_for
        return (self.term, voted, self.commit)

    def committed_in_term(self) -> bool:
        """Has this leader committed an entry of its own term (so its commit index is current)?"""
        if "commit-old-term" in self.cfg.bugs:
            return True  # the buggy leader trusts commit counting instead of its no-op
        return self.log.term_at(self.commit) == self.term

    def log_up_to_date(self, last_index: int, last_term: int) -> bool:
        return (last_term, last_index) >= (self.log.last_term(), self.log.last_index())

    def check_quorum_enabled(self) -> bool:
        return "lease-no-checkquorum" not in self.cfg.bugs

    def lease_valid(self) -> bool:
        """May this leader serve a read from local state without a heartbeat round?"""
        if self.role != LEADER or self.transferee is not None or self.lease_revoked:
            return False
        if "lease-no-checkquorum" in self.cfg.bugs:
            return True
        ticks = sorted((self.now if p == self.cfg.id else self.progress[p].ack_tick for p in self._counted()),
                       reverse=True)
        q = self.quorum()
        return len(ticks) >= q and self.now < ticks[q - 1] + self.cfg.lease_ticks

    # ---- membership -----------------------------------------------------------

    @property
    def membership(self) -> Membership:
        """The latest configuration in the log, committed or not: the one in effect."""
        return self.configs.latest

    def membership_at(self, index: int) -> Membership:
        return self.configs.at(index)

    def is_voter(self) -> bool:
        return self.cfg.id in self.configs.latest.voters

    def quorum(self) -> int:
        conf = self.configs.latest
        if "stale-majority" in self.cfg.bugs and conf.previous is not None:
            return len(conf.previous) // 2 + 1  # the bug: the majority of the configuration before the change
        return conf.quorum()

    def _counted(self) -> tuple[str, ...]:
        """Whose acknowledgements count toward a leader's quorum: the voters (itself only if it is one)."""
        voters = self.configs.latest.voters
        if "count-removed" in self.cfg.bugs:
            # The bug: a member removed from the configuration still counts, for as long as it answers.
            members = self.configs.latest.members
            return voters + tuple(p for p in self.progress if p not in members)
        return voters

    def _replication_targets(self) -> tuple[str, ...]:
        """Who a leader sends the log to, in address-book order (the order messages go out in): every other
        member, and whoever the latest change removed until that change commits (so the removed node usually
        learns of it and stops waiting for a leader)."""
        if "count-removed" in self.cfg.bugs:
            return self.others  # the bug keeps every removed node in the quorum it counts
        targets = set(self.configs.latest.members)
        if self.configs.latest_index > self.commit:
            targets |= set(self.configs.at(self.configs.latest_index - 1).members)
        return tuple(p for p in self.others if p in targets)

    def _sync_progress(self) -> None:
        targets = self._replication_targets()
        last = self.log.last_index()
        for p in targets:
            if p not in self.progress:
                self.progress[p] = Progress(match=0, next=last + 1)
                self._send_append(p)
        for p in [p for p in self.progress if p not in targets]:
            del self.progress[p]

    def _membership_changed(self) -> None:
        """A configuration entry was appended or truncated away (or a snapshot replaced the log)."""
        if self.role in (PRECANDIDATE, CANDIDATE) and not self.is_voter():
            self._become_follower(self.term, None)
        if self.role == LEADER:
            if self.transferee is not None and self.transferee not in self.configs.latest.voters:
                self.transferee = None
            self._sync_progress()
            self._maybe_commit()  # the quorum changed with the voters

    def propose_change(self, action: str, member: str) -> tuple[int, int] | str:
        """Append a configuration entry for one change if leading; its (index, term), or why not:
        "not-leader", "change-in-progress" (the previous change, or this leader's first entry of its term,
        is not committed yet), "learner-behind" (promoting a learner that has not caught up), or a reason of
        membership.plan_change ("unchanged" when the change already holds)."""
        if self.role != LEADER or self.transferee is not None:
            return "not-leader"
        if self.configs.latest_index > self.commit or not self.committed_in_term():
            return "change-in-progress"
        plan = plan_change(self.configs.latest, action, member, self.cfg.peers)
        if isinstance(plan, str):
            return plan
        if action == "promote":
            pr = self.progress[member]
            # Caught up: it has answered this leader, holds what any snapshot covers, and is within one
            # append of the commit index (a voter that is far behind would cost the quorum its availability).
            if not pr.acked_seq or pr.match < self.log.snap_index or pr.match + self.cfg.max_batch < self.commit:
                return "learner-behind"
        self.counters.membership_changes += 1
        entry = self._append_local(CONFIG, plan.entry_data())
        return entry["index"], entry["term"]

    def _after_commit(self) -> None:
        """A leader's commit index moved: a removal that committed ends its replication to the node removed;
        its own removal ends its leadership (dissertation 4.2.2)."""
        if self.role != LEADER or self.commit < self.configs.latest_index:
            return
        if self.is_voter():
            if self._pruned_at != self.configs.latest_index:  # once per change, not on every commit
                self._pruned_at = self.configs.latest_index
                self._sync_progress()
            return
        self.counters.removed_stepdowns += 1
        self._start_heartbeat_round()  # the voters learn that the change committed
        caught_up = [p for p in self.configs.latest.voters
                     if p in self.progress and self.progress[p].match == self.log.last_index()]
        if caught_up:
            self._send(caught_up[0], m.TIMEOUT_NOW)  # one of them campaigns at once
        self._become_follower(self.term, None)

    # ---- role changes -------------------------------------------------------

    def _set_leader(self, leader: str | None) -> None:
        if leader is not None and leader != self.leader:
            self.counters.leader_changes += 1
        self.leader = leader

    def _become_follower(self, term: int, leader: str | None) -> None:
        if term > self.term:
            self.term = term
            self.voted_for = None
        was_leader = self.role == LEADER
        self.role = FOLLOWER
        self._set_leader(leader)
        self.election_elapsed = 0
        self.randomized_timeout = self._random_timeout()
        self.leader_link_down = False
        self.votes = {}
        self.transferee = None
        if was_leader:
            self._fail_reads()

    def _fail_reads(self) -> None:
        self.reads_failed.extend(r.ctx for r in self.pending_reads)
        self.reads_failed.extend(self.reads_awaiting_term_commit)
        self.pending_reads = []
        self.reads_awaiting_term_commit = []
        self.progress = {}

    def _campaign(self, pre: bool, force: bool = False) -> None:
        self.election_elapsed = 0
        self.randomized_timeout = self._random_timeout()
        self.leader_link_down = False
        self._set_leader(None)
        self.votes = {self.cfg.id: True}
        if pre:
            self.role = PRECANDIDATE
            self.counters.prevotes_started += 1
            kind, term = m.PREVOTE, self.term + 1
        else:
            self.role = CANDIDATE
            self.term += 1
            self.voted_for = self.cfg.id
            self.counters.elections_started += 1
            kind, term = m.VOTE, self.term
        if self._tally() is not None:
            return  # a cluster of one
        for peer in self.configs.latest.voters:
            if peer == self.cfg.id:
                continue
            self._send(
                peer,
                kind,
                term=term,
                last_index=self.log.last_index(),
                last_term=self.log.last_term(),
                force=force,
            )

    def _ask_silent_prevoters(self) -> None:
        """Ask again, each tick, the peers that have not answered our PreVote.

        A peer that heard the leader less than a minimum election timeout ago
        ignores a PreVote without a word (the lease, dissertation 4.2.3). The
        two followers of a dead leader heard its last heartbeat together, but
        their ticks fall at different instants, so the first to time out at the
        minimum finds the other still loyal for up to one more tick. Asked once,
        it waited a whole new randomized timeout (150-300 ms) or for the other
        to time out; asked each tick, it is granted a tick later. A PreVote
        changes no one's state, so asking again is harmless.
        """
        for peer in self.others:
            if peer not in self.votes:
                self._send(peer, m.PREVOTE, term=self.term + 1, last_index=self.log.last_index(),
                           last_term=self.log.last_term(), force=False)

    def _yields_to(self, msg: dict) -> bool:
        """Whether this PreCandidate, granting msg's PreVote, should give up its own and follow.

        Two followers that time out within a message delay of each other both
        pass PreVote (each grants the other, as etcd-raft's do), both become
        candidates in the same term, each votes for itself: a split vote, and a
        new randomized timeout before anyone leads (the slowest failovers
        measured). So of two PreCandidates one yields: the one whose log is
        older, or with equal logs the one with the greater id. Links deliver in
        order, so the one that stays sees the other's grant and goes on; the one
        that yields ignores the grant it may get later. Only the liveness of
        this election is at stake: a yielded node is a follower that knows no
        leader and times out as any other does.
        """
        ours = (self.log.last_term(), self.log.last_index())
        theirs = (msg["last_term"], msg["last_index"])
        return self.role == PRECANDIDATE and (theirs > ours or (theirs == ours and msg["src"] < self.cfg.id))

    def _tally(self) -> bool | None:
        """Count votes; act on a decided election and return who won (None: undecided)."""
        voters, q = self.configs.latest.voters, self.quorum()
        granted = sum(1 for p, v in self.votes.items() if v and p in voters)
        rejected = sum(1 for p, v in self.votes.items() if not v and p in voters)
        if granted >= q:
            if self.role == PRECANDIDATE:
                self._campaign(pre=False)
            else:
                self._become_leader()
            return True
        if rejected >= q:
            self._become_follower(self.term, None)
            return False
        return None

    def _become_leader(self) -> None:
        self.role = LEADER
        self._set_leader(self.cfg.id)
        self.counters.became_leader += 1
        self.lease_revoked = False
        self.votes = {}
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.transferee = None
        last = self.log.last_index()
        self.progress = {p: Progress(match=0, next=last + 1) for p in self._replication_targets()}
        self._pruned_at = -1
        if "commit-old-term" not in self.cfg.bugs:
            # The no-op lets this leader commit (and so learn the commit index)
            # in its own term: the Figure 8 rule forbids counting older entries.
            self._append_local(m.NOOP, None)
        self._start_heartbeat_round()

    # ---- ticks --------------------------------------------------------------

    def tick(self) -> None:
        self.now += 1
        self.election_elapsed += 1
        if self.role == LEADER:
            self._tick_leader()
        elif self.election_elapsed >= self.randomized_timeout and self.is_voter():
            self._campaign(pre=True)  # a learner, or a node removed, never campaigns
        elif self.role == PRECANDIDATE:
            self._ask_silent_prevoters()

    def _tick_leader(self) -> None:
        self.transfer_elapsed += 1
        if self.transferee is not None and self.transfer_elapsed >= self.cfg.election_ticks[0]:
            self.transferee = None  # a handover that has not happened by now failed
        if self.election_elapsed >= self.cfg.election_ticks[0]:
            self.election_elapsed = 0
            if self.check_quorum_enabled():
                active = sum(1 for p in self._counted() if p == self.cfg.id or self.progress[p].active)
                if active < self.quorum():
                    self.counters.check_quorum_stepdowns += 1
                    self._become_follower(self.term, None)
                    return
            for pr in self.progress.values():
                pr.active = False
        self.heartbeat_elapsed += 1
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks:
            self._start_heartbeat_round()

    def _start_heartbeat_round(self) -> None:
        self.heartbeat_elapsed = 0
        self.seq += 1
        self.seq_sent_tick[self.seq] = self.now
        self.seq_sent_tick.pop(self.seq - SEQ_MEMORY, None)
        for peer in self.progress:
            self._send_append(peer)
        self._confirm_reads()  # a cluster of one confirms at once

    # ---- proposals and reads ------------------------------------------------

    def propose(self, kind: str, data) -> tuple[int, int] | None:
        """Append a new entry if leading (and not handing over); returns its (index, term)."""
        if self.role != LEADER or self.transferee is not None:
            return None
        entry = self._append_local(kind, data)
        return entry["index"], entry["term"]

    def _append_local(self, kind: str, data) -> dict:
        entry = {"index": self.log.last_index() + 1, "term": self.term, "kind": kind, "data": data}
        self.log.append([entry])
        if self.configs.appended(entry):
            self._membership_changed()  # in effect as soon as it is in the log
        self._maybe_commit()  # a cluster of one
        return entry

    def read_index(self, ctx: int) -> None:
        """Start a ReadIndex read; its index shows up in reads_confirmed (or ctx in reads_failed)."""
        if self.role != LEADER:
            self.reads_failed.append(ctx)
        elif not self.committed_in_term():
            self.reads_awaiting_term_commit.append(ctx)
        elif "read-index-no-confirm" in self.cfg.bugs:
            self.reads_confirmed.append((ctx, self.commit))  # the bug: nobody was asked whether we still lead
        else:
            # Confirmed by the next heartbeat round, which flush() starts.
            self.pending_reads.append(PendingRead(ctx, self.seq + 1, self.commit))

    def _confirm_reads(self) -> None:
        while self.pending_reads:
            read = self.pending_reads[0]
            if read.seq > self.seq:
                return  # its round has not been sent yet
            acks = sum(1 for p in self._counted() if p == self.cfg.id or self.progress[p].acked_seq >= read.seq)
            if acks < self.quorum():
                return
            self.pending_reads.pop(0)
            self.reads_confirmed.append((read.ctx, read.index))

    def flush(self) -> None:
        """Send what accumulated: a heartbeat round for new reads, new entries to followers."""
        if self.role != LEADER:
            return
        if self.pending_reads and self.pending_reads[-1].seq > self.seq:
            self._start_heartbeat_round()
            return
        last = self.log.last_index()
        for peer, pr in self.progress.items():
            if pr.next <= last and not self._awaiting_snapshot(pr):
                self._send_append(peer)

    def transfer_leadership(self, to: str) -> None:
        if self.role != LEADER or to == self.cfg.id or to not in self.configs.latest.voters:
            return
        if self.transferee == to:
            return
        self.counters.transfers_started += 1
        self.transferee = to
        self.lease_revoked = True
        self.transfer_elapsed = 0  # the handover must happen within one election timeout
        if self.progress[to].match == self.log.last_index():
            self._send(to, m.TIMEOUT_NOW)
        else:
            self._send_append(to)

    # ---- sending ------------------------------------------------------------

    def _send(self, dst: str, kind: str, **fields) -> None:
        msg = {"type": kind, "src": self.cfg.id, "dst": dst, "term": self.term}
        msg.update(fields)
        self.outbox.append(msg)

    def _send_append(self, peer: str) -> None:
        pr = self.progress[peer]
        prev = pr.next - 1
        prev_term = self.log.term_at(prev)
        if prev_term is None or prev < self.log.snap_index:
            if prev_term is None and prev > self.log.last_index():
                pr.next = self.log.last_index() + 1
                return self._send_append(peer)
            self._send_snapshot(peer)
            return
        hi = min(self.log.last_index() + 1, pr.next + self.cfg.max_batch)
        hi = self._within_bytes(pr.next, hi)
        # While a snapshot is on its way, only heartbeats: entries after it would
        # be refused, and each refusal would ask for the snapshot again.
        entries = [] if self._awaiting_snapshot(pr) else self.log.slice(pr.next, hi)
        self._send(
            peer,
            m.APPEND,
            prev_index=prev,
            prev_term=prev_term,
            entries=entries,
            commit=self.commit,
            seq=self.seq,
        )
        pr.next = prev + len(entries) + 1  # optimistic: pipeline the next batch

    def _within_bytes(self, lo: int, hi: int) -> int:
        """The end of the longest run of entries from lo (before hi, at least one) within max_append_bytes."""
        budget = self.cfg.max_append_bytes
        for index in range(lo, hi):
            budget -= approx_size(self.log.entry(index)["data"], budget + 1)
            if budget < 0:
                return max(index, lo + 1)
        return hi

    def _awaiting_snapshot(self, pr: Progress) -> bool:
        return pr.snapshot_sent_at is not None and self.now - pr.snapshot_sent_at < self.cfg.election_ticks[0]

    def _send_snapshot(self, peer: str) -> None:
        assert self.snapshot is not None, "log compacted without a snapshot"
        pr = self.progress[peer]
        pr.next = self.snapshot["index"] + 1
        if self._awaiting_snapshot(pr):
            # One is on its way: heartbeats (empty appends the follower refuses
            # until it has installed it) keep it loyal meanwhile, and a large
            # snapshot is not sent again on every refusal.
            return
        pr.snapshot_sent_at = self.now
        self.counters.snapshots_sent += 1
        self._send(peer, m.SNAPSHOT, snapshot=self.snapshot, seq=self.seq)

    # ---- receiving ----------------------------------------------------------

    def step(self, msg: dict) -> None:
        kind, term, src = msg["type"], msg["term"], msg["src"]
        if src not in self.others:
            return  # not a member: it has no say in this cluster
        if term > self.term:
            if kind in (m.PREVOTE, m.VOTE) and not msg.get("force") and self._in_lease():
                # We heard from a live leader within the minimum election timeout:
                # a node that wants to depose it is partitioned or slow (dissertation 4.2.3).
                return
            if kind == m.PREVOTE or (kind == m.PREVOTE_RESP and msg["granted"]):
                pass  # prevotes do not change anybody's term
            else:
                self._become_follower(term, src if kind in m.FROM_LEADER else None)
        elif term < self.term:
            self.counters.messages_rejected_stale_term += 1
            if kind in (m.APPEND, m.SNAPSHOT):
                # Tell a deposed leader about the newer term so it steps down.
                self._send(src, m.APPEND_RESP, success=False, reject_index=-1,
                           conflict_index=None, conflict_term=None, seq=msg.get("seq", 0))
            elif kind == m.PREVOTE:
                self._send(src, m.PREVOTE_RESP, granted=False)
            return
        handler = {
            m.PREVOTE: self._on_prevote,
            m.VOTE: self._on_vote,
            m.PREVOTE_RESP: self._on_vote_resp,
            m.VOTE_RESP: self._on_vote_resp,
            m.APPEND: self._on_append,
            m.SNAPSHOT: self._on_snapshot,
            m.APPEND_RESP: self._on_append_resp,
            m.TIMEOUT_NOW: self._on_timeout_now,
        }.get(kind)
        if handler is not None:
            handler(msg)

    def _in_lease(self) -> bool:
        if not self.check_quorum_enabled():
            return False
        if self.now < self.cfg.election_ticks[0] and self.restarted:
            # Just restarted: we may have acknowledged a leader moments before
            # crashing, and its lease may count on us. Stay loyal to whoever that
            # was for one minimum election timeout.
            return True
        return self.leader is not None and self.election_elapsed < self.cfg.election_ticks[0]

    def _on_prevote(self, msg: dict) -> None:
        # msg["term"] is the term the sender would campaign in.
        can_vote = msg["term"] > self.term or (
            self.voted_for == msg["src"] or (self.voted_for is None and self.leader is None)
        )
        granted = can_vote and self.log_up_to_date(msg["last_index"], msg["last_term"])
        self._send(msg["src"], m.PREVOTE_RESP, granted=granted)
        if granted:
            self.outbox[-1]["term"] = msg["term"]
            if self._yields_to(msg):
                self._become_follower(self.term, None)

    def _on_vote(self, msg: dict) -> None:
        src = msg["src"]
        can_vote = self.voted_for == src or (self.voted_for is None and self.leader is None)
        granted = can_vote and self.log_up_to_date(msg["last_index"], msg["last_term"])
        if granted:
            self.voted_for = src
            self.election_elapsed = 0
        self._send(src, m.VOTE_RESP, granted=granted)

    def _on_vote_resp(self, msg: dict) -> None:
        if msg["type"] == m.PREVOTE_RESP:
            # A grant carries the term we would campaign in; a refusal carries ours.
            if self.role != PRECANDIDATE or (msg["granted"] and msg["term"] != self.term + 1):
                return
        elif self.role != CANDIDATE:
            return
        self.votes.setdefault(msg["src"], bool(msg["granted"]))
        self._tally()

    def _on_timeout_now(self, msg: dict) -> None:
        if self.role != LEADER and self.is_voter():
            # Our leader hands over: campaign now, skipping PreVote, and ask the
            # others to set aside their leader lease.
            self._campaign(pre=False, force=True)

    def _heard_from_leader(self, msg: dict) -> None:
        if self.role != FOLLOWER:
            self._become_follower(self.term, msg["src"])
        self._set_leader(msg["src"])
        self.election_elapsed = 0
        if self.leader_link_down:
            self.leader_link_down = False  # it is back (or was never gone): a random timeout again
            self.randomized_timeout = self._random_timeout()

    def leader_link_lost(self, peer: str) -> None:
        """The driver saw `peer` close its connection to us (a process that dies closes its sockets;
        a partition or a pause closes nothing, so those still wait for a timeout).

        If `peer` is our leader, we campaign as soon as its lease on us runs out, the minimum
        election timeout after we last heard it, rather than at a random point up to the maximum:
        a crashed leader is replaced about a quarter of the range sooner. The lease itself stands
        (``_in_lease`` is untouched), so a leader that is alive after all keeps every guarantee
        its lease reads rest on; if it talks to us again, the random timeout is back. Both
        followers of a dead leader then campaign within a tick of each other, which PreVote's
        tie-break (``_yields_to``) and ``_ask_silent_prevoters`` settle without a split vote.
        """
        if peer == self.leader and self.role == FOLLOWER:
            self.leader_link_down = True
            self.randomized_timeout = self.cfg.election_ticks[0]

    def _on_append(self, msg: dict) -> None:
        if self.role == LEADER:
            return  # two leaders in one term cannot happen; ignore rather than corrupt
        self._heard_from_leader(msg)
        src, prev, seq = msg["src"], msg["prev_index"], msg.get("seq", 0)
        if prev < self.commit:
            # Everything up to our commit index matches every leader's log.
            self._send(src, m.APPEND_RESP, success=True, match_index=self.commit, seq=seq)
            return
        if self.log.term_at(prev) != msg["prev_term"]:
            self._reject_append(src, prev, seq)
            return
        entries = msg["entries"]
        if "truncate-on-append" in self.cfg.bugs and self.log.last_index() > prev:
            # The bug: the log is made to end where this message ends, matching entries or not.
            self._truncate(prev + 1)
        for i, e in enumerate(entries):
            existing = self.log.term_at(e["index"])
            if existing == e["term"]:
                continue
            if existing is not None:
                # A correct leader never overwrites an entry we committed; a buggy
                # one (commit-old-term) can, and the simulator must see the result
                # rather than a crash here.
                self._truncate(e["index"])
            self.log.append([dict(x) for x in entries[i:]])
            if any([self.configs.appended(x) for x in entries[i:]]):
                self._membership_changed()
            break
        last_new = prev + len(entries)
        self._commit_to(min(msg["commit"], last_new))
        self._send(src, m.APPEND_RESP, success=True, match_index=last_new, seq=seq)

    def _reject_append(self, src: str, prev: int, seq: int) -> None:
        if prev > self.log.last_index():
            conflict_index, conflict_term = self.log.last_index() + 1, None
        else:
            conflict_term = self.log.term_at(prev)
            conflict_index = self.log.first_index_of_term_at(prev)
        self._send(src, m.APPEND_RESP, success=False, reject_index=prev,
                   conflict_index=conflict_index, conflict_term=conflict_term, seq=seq)

    def _truncate(self, index: int) -> None:
        self.log.truncate_from(index)
        if self.configs.truncated(index):
            self._membership_changed()  # the configuration before the truncated entry is back
        if self.pending_truncate is None or index < self.pending_truncate:
            self.pending_truncate = index
        self.unstable_from = min(self.unstable_from, index)

    def _commit_to(self, index: int) -> None:
        if index > self.commit:
            self.commit = index

    def _on_snapshot(self, msg: dict) -> None:
        if self.role == LEADER:
            return
        self._heard_from_leader(msg)
        snap, src, seq = msg["snapshot"], msg["src"], msg.get("seq", 0)
        if snap["index"] <= self.commit:
            self._send(src, m.APPEND_RESP, success=True, match_index=self.commit, seq=seq)
            return
        if self.log.term_at(snap["index"]) == snap["term"]:
            # We hold the snapshot's last entry, hence everything before it.
            self._commit_to(snap["index"])
        else:
            self.counters.snapshots_installed += 1
            self.log = RaftLog(snap["index"], snap["term"])
            self.configs = ConfigHistory(snap["index"], snapshot_membership(snap, self.cfg.peers))
            self._membership_changed()
            self.snapshot = snap
            self.snapshot_to_persist = snap
            self.snapshot_to_restore = snap
            if self.pending_truncate is None or snap["index"] + 1 < self.pending_truncate:
                self.pending_truncate = snap["index"] + 1
            self.unstable_from = snap["index"] + 1
            self.commit = snap["index"]
        self._send(src, m.APPEND_RESP, success=True, match_index=snap["index"], seq=seq)

    def _on_append_resp(self, msg: dict) -> None:
        if self.role != LEADER:
            return
        src = msg["src"]
        pr = self.progress.get(src)
        if pr is None:
            return  # a node this leader no longer replicates to (removed)
        pr.active = True
        seq = msg.get("seq", 0)
        if seq > pr.acked_seq:
            pr.acked_seq = seq
            sent = self.seq_sent_tick.get(seq)
            if sent is not None and sent > pr.ack_tick:
                pr.ack_tick = sent
            self._confirm_reads()
        if msg["success"]:
            if msg["match_index"] > pr.match:
                pr.match = msg["match_index"]
                self._maybe_commit()
            if self.snapshot is not None and pr.match >= self.snapshot["index"]:
                pr.snapshot_sent_at = None
            pr.next = max(pr.next, pr.match + 1)
            if self.transferee == src and pr.match == self.log.last_index():
                self._send(src, m.TIMEOUT_NOW)
            return
        if msg["reject_index"] <= pr.match:
            # The follower has since acknowledged this far: the refusal is stale
            # (and answering it would ping-pong forever with a follower whose
            # committed prefix differs, which only a buggy leader can cause).
            return
        pr.next = max(pr.match + 1, min(self._next_after_reject(msg), self.log.last_index() + 1))
        self._send_append(src)

    def _next_after_reject(self, msg: dict) -> int:
        """Fast back-off: skip a whole conflicting term per round trip (paper section 5.3)."""
        if msg["conflict_term"] is not None:
            ours = self.log.last_index_of_term(msg["conflict_term"], msg["reject_index"])
            if ours is not None:
                return ours + 1
        return msg["conflict_index"]

    def _maybe_commit(self) -> None:
        if self.role != LEADER:
            return
        last, q = self.log.last_index(), self.quorum()
        matches = sorted((last if p == self.cfg.id else self.progress[p].match for p in self._counted()),
                         reverse=True)
        if len(matches) < q:
            return
        # A follower can only claim more than we hold if a buggy leader before us
        # let its log run ahead of ours; never commit what we do not have.
        n = min(matches[q - 1], last)
        if n <= self.commit:
            return
        if self.log.term_at(n) != self.term and "commit-old-term" not in self.cfg.bugs:
            return  # Figure 8: only current-term entries are committed by counting
        had_term_commit = self.committed_in_term()
        self._commit_to(n)
        if not had_term_commit and self.committed_in_term():
            for ctx in self.reads_awaiting_term_commit:
                self.pending_reads.append(PendingRead(ctx, self.seq + 1, self.commit))
            self.reads_awaiting_term_commit = []
        self._after_commit()

    # ---- snapshots and persistence bookkeeping -----------------------------

    def compact(self, snapshot: dict) -> None:
        """The state machine took `snapshot` at an applied index: drop the log it covers."""
        if snapshot["index"] <= self.log.snap_index or snapshot["index"] > self.commit:
            return
        self.log.compact(snapshot["index"], snapshot["term"])
        self.configs.compacted(snapshot["index"])
        self.snapshot = snapshot
        self.snapshot_to_persist = snapshot
        self.unstable_from = max(self.unstable_from, snapshot["index"] + 1)

    def take_hard_state(self) -> dict | None:
        hs = self._hard_state_tuple()
        if hs == self.persisted_hard_state:
            return None
        self.persisted_hard_state = hs
        return {"term": hs[0], "voted_for": hs[1], "commit": hs[2]}

    def take_unstable(self) -> tuple[int | None, list[dict], dict | None]:
        """(truncate_from, new entries, snapshot) not yet handed to the driver."""
        truncate, snap = self.pending_truncate, self.snapshot_to_persist
        entries = self.log.slice(self.unstable_from, self.log.last_index() + 1) if self.unstable_from <= self.log.last_index() else []
        self.pending_truncate, self.snapshot_to_persist = None, None
        self.unstable_from = self.log.last_index() + 1
        return truncate, [dict(e) for e in entries], snap

    def take_outbox(self) -> list[dict]:
        out, self.outbox = self.outbox, []
        return out
