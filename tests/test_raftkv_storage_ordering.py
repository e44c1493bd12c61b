"""The server persists a Ready before its messages and replies leave (a leader's appends excepted: they go
out before its own fsync), and batches fsyncs (group commit)."""

import asyncio
import socket
import sys
import time

from targets.raftkv.node import NodeConfig, Ready
from targets.raftkv.server import RaftKVServer, ServerConfig
from targets.raftkv.storage import Storage, decode_records
from targets.raftkv.transport import PeerTransport


class ScriptedNode:
    """Stands in for RaftKVNode: every client write becomes one entry, one message and one reply.

    As a follower the message is an append_resp (what a follower sends once its log holds the entry);
    as a leader, an append; as a candidate, a vote request (not what a candidate does on a write, but
    the Ready's shape is all the driver sees)."""

    def __init__(self, role="follower"):
        self.role = role
        self.pending: list[tuple[int, dict]] = []
        self.index = 0
        self.advanced = 0

    def tick(self):
        pass

    def receive(self, msg):
        pass

    def client_request(self, handle, op):
        self.pending.append((handle, op))

    def ready(self):
        rd = Ready()
        for handle, op in self.pending:
            self.index += 1
            rd.entries.append({"index": self.index, "term": 1, "kind": "op", "data": {"op": op}})
            kind = {"leader": "append", "candidate": "vote"}.get(self.role, "append_resp")
            rd.messages.append({"type": kind, "src": "n1", "dst": "n2", "term": 1, "index": self.index})
            rd.replies.append((handle, 200, {"index": self.index}))
        self.pending = []
        if rd.entries:
            rd.hard_state = {"term": 1, "voted_for": "n1", "commit": self.index}
        return rd

    def advance(self, rd):
        self.advanced += 1

    def status(self):
        return {"id": "n1", "role": self.role, "term": 1, "leader": "n1",
                "commit_index": self.index, "applied_index": self.index,
                "last_log_index": self.index}

    def metrics(self):
        return {"term": 1}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_puts(tmp_path, monkeypatch, role, n=20, rounds=1, stagger=0.0):
    """n concurrent clients, each making `rounds` puts one after the other (the odd ones from `stagger`
    seconds on), through a server around ScriptedNode(role) on a slow disk: (results, events)."""
    events: list[tuple] = []
    real_write = Storage.write

    def slow_write(self, plan):
        indexes = [r["e"]["index"] for r in decode_records(plan.wal_append, 0)[0] if r["t"] == "ent"]
        events.append(("write", time.monotonic(), max(indexes, default=None)))
        time.sleep(0.05)  # a slow disk: requests pile up behind this fsync
        real_write(self, plan)
        indexes = [r["e"]["index"] for r in decode_records(plan.wal_append, 0)[0] if r["t"] == "ent"]
        events.append(("fsync", time.monotonic(), max(indexes, default=None)))

    monkeypatch.setattr(Storage, "write", slow_write)
    monkeypatch.setattr(PeerTransport, "send",
                        lambda self, msg: events.append(("send", time.monotonic(), msg["type"], msg["index"])))

    async def scenario():
        peers = {"n1": ("127.0.0.1", free_port()), "n2": ("127.0.0.1", free_port())}
        cfg = ServerConfig(node=NodeConfig(id="n1", peers=("n1", "n2")), peer_addrs=peers,
                           client_addr=("127.0.0.1", free_port()), data_dir=str(tmp_path),
                           cluster_key=b"k")
        server = RaftKVServer(cfg)
        server.storage.open()
        server.node = ScriptedNode(role)
        await server.start()
        try:
            async def put(i):
                result = await server._submit({"f": "put", "key": "k", "value": i})
                events.append(("reply", time.monotonic(), result[1]["index"]))
                return result

            async def client(i):
                await asyncio.sleep(stagger * (i % 2))  # half the clients out of step with the others
                return [await put(i * rounds + r) for r in range(rounds)]

            first = await put(-1)  # its Ready makes term 1 durable
            results = [r for rs in await asyncio.gather(*(client(i) for i in range(n))) for r in rs]
        finally:
            await server.stop()
        return [first, *results]

    return asyncio.run(scenario()), events


def test_replies_and_messages_leave_only_after_their_fsync_and_writes_share_fsyncs(
        tmp_path, monkeypatch):
    results, events = run_puts(tmp_path, monkeypatch, "follower")
    assert all(r[0] == 200 for r in results), results
    fsyncs = [e[1] for e in events if e[0] == "fsync"]
    assert 2 <= len(fsyncs) < 21  # group commit: 21 writes, fewer fsyncs
    # every send and reply happens after the fsync that covers it
    done_at = 0.0
    for e in events:
        if e[0] == "fsync":
            done_at = e[1]
        elif e[0] in ("send", "reply"):
            assert done_at > 0 and e[1] >= done_at, events
    # and what was acknowledged is on disk
    recovered = Storage(tmp_path).open()
    assert len(recovered.entries) == 21
    assert recovered.hard_state["commit"] == 21


def test_a_leader_sends_its_appends_during_its_own_fsync_and_replies_after_it(tmp_path, monkeypatch):
    results, events = run_puts(tmp_path, monkeypatch, "leader")
    assert all(r[0] == 200 for r in results), results
    # the first Ready carries a term not yet durable: its append waits for its fsync
    first_fsync = next(i for i, e in enumerate(events) if e[0] == "fsync")
    sends = [e for e in events if e[0] == "send"]
    assert [e[2] for e in sends] == ["append"] * 21
    assert sends[0][3] == 1 and sends[0][1] >= events[first_fsync][1]
    # after that, each append leaves before the fsync that makes its entry durable on the leader
    for e in sends[1:]:
        durable = next(f for f in events if f[0] == "fsync" and f[2] is not None and f[2] >= e[3])
        assert e[1] < durable[1], (e, durable)
    # and every reply after the fsync that made its entry durable
    for e in (e for e in events if e[0] == "reply"):
        durable = next(f for f in events if f[0] == "fsync" and f[2] is not None and f[2] >= e[2])
        assert e[1] >= durable[1], (e, durable)
    recovered = Storage(tmp_path).open()
    assert len(recovered.entries) == 21


def test_a_candidate_sends_its_vote_requests_before_its_fsync_even_of_a_new_term(tmp_path, monkeypatch):
    results, events = run_puts(tmp_path, monkeypatch, "candidate")
    sends = [e for e in events if e[0] == "send"]
    assert [e[2] for e in sends] == ["vote"] * 21
    for e in sends:  # the first one too: its term is not durable yet
        durable = next(f for f in events if f[0] == "fsync" and f[2] is not None and f[2] >= e[3])
        assert e[1] < durable[1], (e, durable)


class PipelinedLeader(ScriptedNode):
    """A leader of three: a write is answered in the Ready after the one that appends it, as followers'
    acknowledgements of the earlier Ready arrive, so its commit index trails what it writes."""

    def __init__(self):
        super().__init__("leader")
        self.unanswered: list[tuple[int, int]] = []  # (handle, index) appended, not yet committed
        self.commit = 0

    def ready(self):
        rd = Ready()
        for handle, index in self.unanswered:
            rd.replies.append((handle, 200, {"index": index}))
            self.commit = index
        self.unanswered = []
        for handle, op in self.pending:
            self.index += 1
            rd.entries.append({"index": self.index, "term": 1, "kind": "op", "data": {"op": op}})
            rd.messages.append({"type": "append", "src": "n1", "dst": "n2", "term": 1, "index": self.index})
            self.unanswered.append((handle, self.index))
        self.pending = []
        if rd.entries or rd.replies:
            rd.hard_state = {"term": 1, "voted_for": "n1", "commit": self.commit}
        return rd

    def status(self):
        return {**super().status(), "commit_index": self.commit}


def test_a_leader_answers_committed_writes_without_waiting_for_the_fsync_of_newer_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ScriptedNode", lambda role: PipelinedLeader())
    results, events = run_puts(tmp_path, monkeypatch, "leader", n=8, rounds=6, stagger=0.025)
    replies = [(i, e) for i, e in enumerate(events) if e[0] == "reply"]
    assert len(replies) == 49
    during_newer_write = 0
    for i, e in replies:
        # never before its own entry is durable...
        own = next(j for j, f in enumerate(events) if f[0] == "fsync" and f[2] is not None and f[2] >= e[2])
        assert i > own
        # ...but while the write of newer entries is under way, not after it
        started = [j for j, f in enumerate(events[:i]) if f[0] == "write" and (f[2] or 0) > e[2]]
        if started and not any(f[0] == "fsync" for f in events[started[-1]:i]):
            during_newer_write += 1
    # Answered after the write (as before), none can be: the driver has no write under way when it answers.
    assert during_newer_write >= 1, events
