"""The server persists a Ready before its messages and replies leave, and batches fsyncs (group commit)."""

import asyncio
import socket
import time

from targets.raftkv.node import NodeConfig, Ready
from targets.raftkv.server import RaftKVServer, ServerConfig
from targets.raftkv.storage import Storage
from targets.raftkv.transport import PeerTransport


class ScriptedNode:
    """Stands in for RaftKVNode: every client write becomes one entry, one message and one reply."""

    def __init__(self):
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
            rd.messages.append({"type": "append", "src": "n1", "dst": "n2", "term": 1})
            rd.replies.append((handle, 200, {}))
        self.pending = []
        if rd.entries:
            rd.hard_state = {"term": 1, "voted_for": "n1", "commit": self.index}
        return rd

    def advance(self, rd):
        self.advanced += 1

    def status(self):
        return {"id": "n1", "role": "leader", "term": 1, "leader": "n1",
                "commit_index": self.index, "applied_index": self.index,
                "last_log_index": self.index}

    def metrics(self):
        return {"term": 1}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_replies_and_messages_leave_only_after_their_fsync_and_writes_share_fsyncs(
        tmp_path, monkeypatch):
    events: list[tuple[str, float]] = []
    real_write = Storage.write

    def slow_write(self, plan):
        time.sleep(0.05)  # a slow disk: requests pile up behind this fsync
        real_write(self, plan)
        events.append(("fsync", time.monotonic()))

    monkeypatch.setattr(Storage, "write", slow_write)
    monkeypatch.setattr(PeerTransport, "send",
                        lambda self, msg: events.append(("send", time.monotonic())))

    async def scenario():
        peers = {"n1": ("127.0.0.1", free_port()), "n2": ("127.0.0.1", free_port())}
        cfg = ServerConfig(node=NodeConfig(id="n1", peers=("n1", "n2")), peer_addrs=peers,
                           client_addr=("127.0.0.1", free_port()), data_dir=str(tmp_path),
                           cluster_key=b"k")
        server = RaftKVServer(cfg)
        server.storage.open()
        server.node = ScriptedNode()
        await server.start()
        try:
            async def put(i):
                result = await server._submit({"f": "put", "key": "k", "value": i})
                events.append(("reply", time.monotonic()))
                return result

            results = await asyncio.gather(*(put(i) for i in range(20)))
        finally:
            await server.stop()
        return results, server

    results, server = asyncio.run(scenario())
    assert all(r == (200, {}) for r in results), results
    fsyncs = [t for kind, t in events if kind == "fsync"]
    assert 1 <= len(fsyncs) < 20  # group commit: 20 writes, fewer fsyncs
    # every send and reply happens after the first fsync that could cover it
    first_fsync = fsyncs[0]
    assert all(t >= first_fsync for kind, t in events if kind in ("send", "reply"))
    # and what was acknowledged is on disk
    recovered = Storage(tmp_path).open()
    assert len(recovered.entries) == 20
    assert recovered.hard_state["commit"] == 20
