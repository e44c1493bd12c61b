"""The asyncio loop that runs one raftkv node: ticks, peer frames and HTTP requests in, Readys out.

All node calls happen on one task (the driver), so the sans-IO node never
sees concurrency. Events (ticks, peer messages, client requests) are queued
and applied in a batch; then the driver takes the node's Ready and

1. encodes what must be persisted, and writes + fsyncs it on a worker thread
   (the loop keeps reading sockets meanwhile, so the next Ready batches
   everything that arrived during this fsync: group commit); a snapshot the
   node took itself is written in the background instead, and one installed
   from the leader in bounded pieces (snapshots.py);
2. only then sends the Ready's messages and answers its replies (a leader's
   appends and a candidate's vote requests excepted: they go out before its
   own write, see ``_send_early``; so do a leader's answers when none of them
   can depend on this write, see ``_answer_early``);
3. calls ``advance``.

Time comes only from the ``Clock`` (see clock.py): the ticker calls
``node.tick()`` every ``tick_ms`` of the clock's monotonic time, so a skewed
rate makes ticks come faster or slower.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import os
import random
from collections import deque
from dataclasses import dataclass

from . import metrics
from .clock import Clock
from .failpoints import (
    CRASH_AFTER_VOTE,
    CRASH_BEFORE_SEND_FIRST_WRITE,
    CRASH_EXIT_CODE,
    FAILPOINTS,
    Failpoints,
    granted_vote,
    own_client_entry,
)
from .httpapi import HttpApi
from .messages import APPEND, FORWARD, FORWARD_RESP, VOTE
from .node import NodeConfig, RaftKVNode, Restored
from .snapshots import SnapshotWriter
from .storage import Storage
from .transport import PeerTransport

log = logging.getLogger("raftkv")

# After a stall (SIGSTOP, a slow fsync) deliver at most this many election
# timeouts' worth of missed ticks: enough for every timer (and a lease) to
# expire, without replaying minutes of ticks.
CATCHUP_ELECTION_TIMEOUTS = 2


def _give_up(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result((504, {"error": "timeout"}))


@dataclass(frozen=True)
class ServerConfig:
    node: NodeConfig
    peer_addrs: dict[str, tuple[str, int]]
    client_addr: tuple[str, int]
    data_dir: str
    cluster_key: bytes
    clock_file: str | None = None
    fsync: bool = True
    failpoints: bool = False  # serve /failpoints (see failpoints.py)



def _exit_at_failpoint(what: str, *args) -> None:
    """Log why, flush the log, and exit at once with the failpoint status (no cleanup: a crash)."""
    log.warning(what + "; exiting with %d", *args, CRASH_EXIT_CODE)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(CRASH_EXIT_CODE)


class RaftKVServer:
    # What this server drives; targets/paxoskv runs the same loop around its own node and storage.
    node_class = RaftKVNode
    storage_class = Storage
    known_failpoints = FAILPOINTS
    vote_request = "vote"  # the message whose granting crash-after-vote waits for
    granted_vote = staticmethod(granted_vote)  # the granted vote among a Ready's messages, if any

    def __init__(self, config: ServerConfig):
        self.config = config
        self.clock = Clock(config.clock_file)
        self.storage = self.storage_class(config.data_dir, fsync=config.fsync)
        self.snapshots = SnapshotWriter(self.storage, self._snapshot_written)
        self._compact_due = False  # a background snapshot is durable: the WAL may drop what it covers
        self.tick_lateness = metrics.Histogram()
        self.node: RaftKVNode | None = None
        self.transport: PeerTransport | None = None
        self.http: HttpApi | None = None
        self._events: deque[tuple] = deque()
        self._wake: asyncio.Event | None = None
        self._waiting: dict[int, asyncio.Future] = {}
        self._handles = itertools.count(1)
        self._io = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="raftkv-fsync")
        self._last_status: dict = {}
        # The commit index and term an fsync has covered (status reports no more than these); set from
        # the data dir by open().
        self._written_commit = 0
        self._written_term = 0
        # A commit index written without an fsync: the driver fsyncs it a heartbeat after writing it,
        # unless an fsync covers it first; else an idle node would report a commit index behind its
        # own forever (the election bench waits for equal ones).
        self._unsynced_commit: int | None = None
        self._tasks: list[asyncio.Task] = []
        self._clock_error: str | None = None
        self._next_tick: float | None = None  # on the node's clock; see _due_ticks
        self.failpoints = Failpoints(enabled=config.failpoints, known=self.known_failpoints)
        # Set when the driver or the ticker died of a bug or a failed write:
        # the process must then exit rather than keep answering without Raft.
        self.failed: asyncio.Event | None = None

    def open_storage(self) -> None:
        """Replay the data directory (before the loop starts, so errors are plain exceptions)."""
        rec = self.storage.open()
        if rec.truncated_bytes:
            log.warning("dropped %d bytes of torn or corrupt log tail", rec.truncated_bytes)
        restored = None
        if rec.hard_state is not None or rec.snapshot is not None or rec.entries:
            restored = Restored(rec.hard_state, rec.snapshot, rec.entries)
            log.info("restored term=%s commit=%s snapshot_index=%s entries=%d",
                     (rec.hard_state or {}).get("term"), (rec.hard_state or {}).get("commit"),
                     (rec.snapshot or {}).get("index"), len(rec.entries))
        seed = int.from_bytes(os.urandom(8), "big")
        self.node = self.node_class(self.config.node, restored, random.Random(seed))
        self._written_commit = self.node.status().get("commit_index") or 0
        self._written_term = self.node.status().get("term") or 0
        self._last_status = self.node.status()

    async def start(self) -> None:
        """Bind the peer and client ports and start ticking. Raises OSError if a port is taken."""
        if self.node is None:
            self.open_storage()
        self._wake = asyncio.Event()
        self.failed = asyncio.Event()
        cfg = self.config
        self.transport = PeerTransport(cfg.node.id, cfg.peer_addrs, cfg.cluster_key,
                                       self._on_peer_message, verify="no-peer-auth" not in cfg.node.bugs,
                                       link_lost=self._on_link_lost)
        self.http = HttpApi(self._submit, self.status, self.metrics_text, self.failpoints, self.membership)
        await self.transport.start()
        await self.http.start(*cfg.client_addr)
        self._tasks = [asyncio.create_task(self._drive(), name="raftkv-driver"),
                       asyncio.create_task(self._tick(), name="raftkv-ticker"),
                       self.snapshots.start()]
        for t in self._tasks:
            t.add_done_callback(self._on_task_done)
        log.info("serving peers on %s:%d, clients on %s:%d",
                 *cfg.peer_addrs[cfg.node.id], *cfg.client_addr)

    def _on_task_done(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        log.critical("%s stopped: %r", task.get_name(), exc, exc_info=exc)
        self.failed.set()

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        log.debug("stop: driver stopped")
        if self.http is not None:
            await self.http.close()
        log.debug("stop: http closed")
        if self.transport is not None:
            await self.transport.close()
        log.debug("stop: transport closed")
        self._io.shutdown(wait=True)  # an fsync in flight finishes before we close the file
        await self.snapshots.stop()
        self.storage.close()

    # -- inputs --------------------------------------------------------------

    def _on_peer_message(self, msg: dict) -> None:
        self._events.append(("receive", msg))
        self._wake.set()

    def _on_link_lost(self, peer: str) -> None:
        self._events.append(("link_lost", peer))
        self._wake.set()

    async def _submit(self, op: dict) -> tuple[int, dict]:
        handle = next(self._handles)
        fut = asyncio.get_running_loop().create_future()
        self._waiting[handle] = fut
        self._events.append(("client", handle, op))
        self._wake.set()
        # The node answers 504 itself after request_timeout ticks; this is only
        # a net under it (a stalled loop, a very slow clock rate).
        net = self.config.node.request_timeout / 1000 * 2 + 1
        # A plain timer rather than wait_for: one callback instead of an extra
        # future and three, on the path of every request.
        timer = asyncio.get_running_loop().call_later(net, _give_up, fut)
        try:
            return await fut
        finally:
            timer.cancel()
            self._waiting.pop(handle, None)

    def _due_ticks(self) -> int:
        """Ticks that have fallen due on the node's clock since the last call."""
        node_cfg = self.config.node
        tick_s = node_cfg.tick_ms / 1000
        cap = max(1, CATCHUP_ELECTION_TIMEOUTS * node_cfg.election_timeout[1] // node_cfg.tick_ms)
        now = self.clock.monotonic()
        if self._next_tick is None:
            self._next_tick = now + tick_s
            return 0
        if self._next_tick <= now:
            self.tick_lateness.observe(now - self._next_tick)
        due = 0
        while self._next_tick <= now and due < cap:
            due += 1
            self._next_tick += tick_s
        if self._next_tick <= now:
            self._next_tick = now + tick_s
        return due

    async def _tick(self) -> None:
        self._due_ticks()  # start counting from now
        while True:
            # A floor, so that a tick already due but not yet counted by the
            # driver does not spin this task.
            await asyncio.sleep(max(0.001, self.clock.real_seconds_until(self._next_tick)))
            # The driver counts the due ticks itself (see _apply_events); this
            # task only wakes it when one falls due.
            self._wake.set()
            if self.clock.last_error != self._clock_error:
                self._clock_error = self.clock.last_error
                if self._clock_error:
                    log.warning("%s (keeping offset=%s rate=%s)", self._clock_error,
                                self.clock.offset_s, self.clock.rate)

    # -- the driver ---------------------------------------------------------------

    def _apply_events(self) -> None:
        node = self.node
        # Time first: after a freeze (docker pause, SIGSTOP) the ticks missed
        # must reach the node before any request that queued up meanwhile, or
        # a leader would answer a lease read on a lease that ran out while it
        # was frozen.
        for _ in range(self._due_ticks()):
            node.tick()
        # With crash-after-vote armed, a vote request ends the batch: if it is
        # granted, the crash must come before anything queued behind it (the
        # winner's first append above all) is applied.
        stop_after_vote = CRASH_AFTER_VOTE in self.failpoints.armed
        while self._events:
            ev = self._events.popleft()
            kind = ev[0]
            if kind == "receive":
                try:
                    node.receive(ev[1])
                except Exception:  # an authenticated but unexpected message must not stop the node
                    log.exception("node rejected a peer message %r", ev[1].get("type"))
                if stop_after_vote and ev[1].get("type") == self.vote_request:
                    return
            elif kind == "link_lost":
                node.link_lost(ev[1])
            elif kind == "client":
                try:
                    node.client_request(ev[1], ev[2])
                except Exception:
                    # Unknown whether the node changed state: answer 500 (indefinite).
                    log.exception("node failed on client request %r", ev[2])
                    fut = self._waiting.get(ev[1])
                    if fut is not None and not fut.done():
                        fut.set_result((500, {"error": "internal"}))

    async def _drive(self) -> None:
        loop = asyncio.get_running_loop()
        commit_due: float | None = None  # when a written-but-unsynced commit index gets its own fsync
        while True:
            if self._unsynced_commit is not None and commit_due is None:
                commit_due = loop.time() + self.config.node.heartbeat / 1000
            if commit_due is not None and self._unsynced_commit is None:
                commit_due = None  # an fsync covered it first
            if commit_due is not None and loop.time() >= commit_due:
                # A deadline, not an idle timeout: ticks wake the driver every millisecond, so it is
                # never idle for a heartbeat, and a follower only hearing heartbeats never fsyncs.
                await loop.run_in_executor(self._io, self.storage.sync_wal)
                self._written_commit = max(self._written_commit, self._unsynced_commit)
                self._unsynced_commit = commit_due = None
                continue
            if commit_due is None:
                await self._wake.wait()
            else:
                try:
                    async with asyncio.timeout(commit_due - loop.time()):
                        await self._wake.wait()
                except TimeoutError:
                    continue
            self._wake.clear()
            if self._compact_due:
                self._compact_due = False
                await self._applying_events_meanwhile(self.snapshots.compact_wal())
            self._apply_events()
            rd = self.node.ready()
            if rd.is_empty:
                continue
            plan = self.storage.prepare(rd.hard_state, rd.truncate_from, rd.entries, rd.snapshot)
            early: set[int] = set()  # ids of the messages already sent, before the write
            answered = False  # the replies too
            # crash-before-send-first-write: a leader's own client entry in this Ready means its
            # write is the last thing this process does (none of the Ready's messages leave early).
            doomed = self._write_to_crash_at(rd)
            if plan is not None and plan.install is not None:
                # Durable before anything after it is acknowledged: the messages of later events wait for
                # the next Ready, persisted after this one.
                await self._applying_events_meanwhile(self.snapshots.install(plan.install), hold=doomed is not None)
                log.info("installed snapshot at index %s persisted; log compacted", plan.install["index"])
            elif plan is not None and plan.needs_fsync:
                if doomed is None:
                    early = self._send_early(rd)
                    answered = self._answer_early(rd, early)
                # An fsync of megabytes of entries can take longer than an election timeout on a busy
                # disk; ticks held back meanwhile would all be applied ahead of the heartbeats and
                # answers that came in during it, and fire a follower's election timer or a leader's
                # check-quorum for no reason (issue 17's big-state attack lost its leader so). What the
                # events produce goes out with the next Ready, after this write.
                await self._applying_events_meanwhile(loop.run_in_executor(self._io, self.storage.write, plan),
                                                      hold=doomed is not None)
            elif plan is not None:
                self.storage.write(plan)  # a buffered write, no fsync: not worth a thread hop
            if doomed is not None:
                self._crash_before_send(doomed, rd, synced=plan is not None and plan.needs_fsync)
            if plan is not None and plan.background is not None:
                self.snapshots.submit(plan.background)  # covered by the WAL until written
            # Only what an fsync covered: a commit index written without one is lost in a power cut.
            if rd.hard_state is not None and plan is not None and plan.needs_fsync:
                self._written_commit = rd.hard_state.get("commit", self._written_commit)
                self._written_term = rd.hard_state.get("term", self._written_term)
                self._unsynced_commit = None
            elif rd.hard_state is not None and plan is not None and "commit" in rd.hard_state:
                self._unsynced_commit = rd.hard_state["commit"]
            vote = self.granted_vote(rd.messages) if CRASH_AFTER_VOTE in self.failpoints.armed else None
            for msg in rd.messages:
                if early and id(msg) in early:
                    continue
                queued = self.transport.send(msg)
                if msg is vote:
                    await self._crash_after_vote(vote, queued)
                if not queued and msg["type"] == FORWARD:
                    self.node.forward_unsent(msg)  # its answer goes out with the next Ready
            if not answered:
                self._answer(rd)
            self.node.advance(rd)
            self._log_transitions()
            self._wake.set()  # events that arrived during the fsync are waiting

    def _send_early(self, rd) -> set[int]:
        """Messages that leave before this Ready's write + fsync, not after it (the ids of those sent).

        - A leader's appends. The Raft dissertation (10.2.1): the leader may
          write to its disk in parallel with replicating to its followers, so a
          write costs max(leader fsync, round trip + follower fsync) instead of
          their sum; etcd does the same. Nothing is acknowledged before a quorum
          holds it durably: the core counts the leader's whole log toward
          commitment, and a follower's answer to these appends may be applied
          while this write is in flight (_applying_events_meanwhile), but what
          it leads to (a reply, a commit index sent on, an applied read) goes
          out only with the next Ready, taken after this write returns, and by
          then the leader's copy is durable too. Only when the leader's term is
          already durable (it is: see the next case).
        - A candidate's vote requests, by the same argument: it may count the
          answers while its own vote is being written, but it acts as leader
          only in a later Ready, after this write. A candidate that dies before it is durable never
          counted that vote, and whatever it votes for in the term after its
          restart is its first durable vote there. (Nothing else it does in the
          forgotten term survives: it cannot have led.) This takes one fsync
          off every election.

        Everything else (votes granted or refused, answers to appends, forwarded
        answers, replies) waits for the fsync.
        """
        role = self.node.status().get("role")
        hs = rd.hard_state
        if role == "leader" and (hs is None or hs.get("term") == self._written_term):
            kind = APPEND
        elif role == "candidate":
            kind = VOTE
        else:
            return set()
        sent = set()
        for msg in rd.messages:
            if msg.get("type") == kind:
                self.transport.send(msg)  # unsent (no link): Raft sends again, as for any lost message
                sent.add(id(msg))
        return sent

    def _answer(self, rd) -> None:
        for handle, status, body in rd.replies:
            fut = self._waiting.get(handle)
            if fut is not None and not fut.done():
                fut.set_result((status, body))

    def _answer_early(self, rd, sent: set[int]) -> bool:
        """A leader answers its clients (and the followers that forwarded to it) before this Ready's
        write when no answer can depend on it: whether it did.

        What a leader answers rests on committed state: a write is acknowledged
        once committed, a read once its index is applied, a refusal on what the
        log or the state says. A quorum holds every committed entry durably, and
        here it holds it without this write: a follower's acknowledgement is
        applied only after the leader's write of that entry returned (see
        _send_early), so the entries this Ready writes are above the commit
        index. Unless it is not so (a cluster of one commits what it has just
        appended): then everything waits for the fsync, as before. Answered
        after the write, a busy leader's replies waited for the fsync of the
        next batch of writes, which they do not need.
        """
        st = self.node.status()
        hs = rd.hard_state
        if st.get("role") != "leader" or (hs is not None and hs.get("term") != self._written_term):
            return False
        if rd.entries and rd.entries[0]["index"] <= (st.get("commit_index") or 0):
            return False
        for msg in rd.messages:
            if msg.get("type") == FORWARD_RESP:
                self.transport.send(msg)
                sent.add(id(msg))
        self._answer(rd)
        return True

    async def _applying_events_meanwhile(self, write, hold: bool = False) -> None:
        """Await a long write (an installed snapshot, the WAL's compaction) while events keep reaching the node.

        A 30 MB install takes the driver a second or more. Were ticks held back
        meanwhile, they would all arrive at once afterwards, ahead of the
        heartbeats that came in the while, and fire the follower's election
        timer for no reason. Applying events is safe while a Ready is being
        persisted: whatever they produce (messages, replies, hard state) goes out
        with the next Ready, which is only taken, persisted and sent after this
        write. With crash-after-vote armed, nothing more is applied (the crash
        must come before anything queued behind the vote), nor with `hold`
        (crash-before-send-first-write has chosen the Ready being written).
        """
        task = asyncio.ensure_future(write)
        try:
            while not task.done():
                woken = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({task, woken}, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                if not task.done() and not hold and CRASH_AFTER_VOTE not in self.failpoints.armed:
                    self._wake.clear()
                    self._apply_events()
        finally:
            if not task.done():
                task.cancel()  # the driver is stopping
                await asyncio.gather(task, return_exceptions=True)
        self._wake.set()  # what the node did meanwhile is in its next Ready
        task.result()  # a failed write stops the driver, as any failed write does

    def _snapshot_written(self, snapshot: dict) -> None:
        log.info("snapshot at index %s persisted; compacting the log", snapshot.get("index"))
        self._compact_due = True
        self._wake.set()

    async def _crash_after_vote(self, vote: dict, queued: bool) -> None:
        """The crash-after-vote failpoint: die once the vote has reached the kernel, handling nothing else.

        The driver awaits here, so no message that arrived meanwhile (the
        winner's first append above all) is applied or persisted; the batch
        that granted the vote ended with its request (_apply_events), and the
        messages after the vote in this Ready are never sent.
        """
        if not queued:
            how = "dropped: no link to it"
        elif await self.transport.flush(vote["dst"], timeout=0.5):
            how = "sent"
        else:
            how = "maybe not sent: the link did not drain in 0.5 s"
        _exit_at_failpoint("failpoint crash-after-vote: granted my vote to %s in term %s (%s)",
                           vote["dst"], vote["term"], how)

    def _write_to_crash_at(self, rd) -> dict | None:
        """The client entry of its own term in a leader's Ready, when crash-before-send-first-write is armed."""
        if CRASH_BEFORE_SEND_FIRST_WRITE not in self.failpoints.armed or not rd.entries:
            return None
        st = self.node.status()
        if st.get("role") != "leader":
            return None
        return own_client_entry(rd.entries, st.get("term"))

    def _crash_before_send(self, entry: dict, rd, synced: bool) -> None:
        """The crash-before-send-first-write failpoint: die once the Ready holding the leader's client
        entry is written, before any of its messages (the appends carrying the entry above all) leaves.

        Nothing was sent early (_drive skips _send_early and _answer_early for this Ready), and nothing
        that arrived during the write was applied (_applying_events_meanwhile), so the entry exists on
        this node's disk only: the start of Raft's Figure 8, where a later leader of the same index
        but a higher term may overwrite it, or a later term of this node commit it by counting.
        """
        _exit_at_failpoint("failpoint %s: leader of term %s wrote client entry %s to disk (%s), before sending "
                           "any of its %d messages", CRASH_BEFORE_SEND_FIRST_WRITE, entry["term"], entry["index"],
                           "fsynced" if synced else "written, no fsync", len(rd.messages))

    def _log_transitions(self) -> None:
        now = self.node.status()
        before = self._last_status
        if now.get("term") != before.get("term"):
            log.info("term %s -> %s", before.get("term"), now.get("term"))
        if now.get("role") != before.get("role"):
            log.info("role %s -> %s (term %s)", before.get("role"), now.get("role"), now.get("term"))
            if now.get("role") == "candidate":
                log.info("election started for term %s", now.get("term"))
        if now.get("leader") != before.get("leader"):
            log.info("leader %s -> %s (term %s)", before.get("leader"), now.get("leader"),
                     now.get("term"))
        self._last_status = now

    # -- outputs ------------------------------------------------------------------

    def status(self) -> dict:
        # wall_time and clock_rate let a nemesis verify that a clock skew took effect.
        status = {**self.node.status(), "wall_time": self.clock.wall(), "clock_rate": self.clock.rate}
        # Report the commit index this node has made durable, not the one it holds
        # in memory a moment before writing (a SIGKILL in between) or has written
        # without an fsync (a power cut: lose-unsynced): either would make the
        # reported commit index go back after the restart, which observers
        # rightly take as lost state.
        if status.get("commit_index") is not None:
            status["commit_index"] = min(status["commit_index"], self._written_commit)
        # The same for the term: a candidate's new term is in memory until its Ready is written, and a
        # kill in between brought it back one term lower, which the split-brain checker took as a
        # forgotten term (a kills-only run of suites/disk.yaml, seed 7). Nothing left with that term.
        if status.get("term") is not None and status["term"] > self._written_term:
            status["term"] = self._written_term
            if status.get("role") == "leader":
                # Elected while its new term was still being written: answers to its early vote requests
                # are applied during that write. It has not acted as leader (its first append leaves with
                # the Ready after the write), and in the term it reports it did not lead: reported as
                # leader, it looked like a second leader of the old term (tests/test_chaos_example.py).
                status["role"] = "candidate"
                status["leader"] = None
        return status

    def membership(self) -> dict:
        """GET /membership: the node's latest configuration (membership changes go through _submit)."""
        return self.node.membership()

    def metrics_text(self) -> str:
        io = {**self.transport.counters, **self.http.counters}
        return metrics.render(self.node.metrics(), str(self.node.status().get("role")), io,
                              self.transport.rejected, self.storage.fsync_stats, self.tick_lateness)
