"""Authenticated peer transport for raftkv: asyncio TCP, length-prefixed, HMAC-SHA256 frames.

Wire format of one frame::

    <length: u32 big-endian> <mac: 32 bytes> <payload: JSON {"from": ID, "msg": {...}}>

``length`` counts the MAC and the payload; ``mac`` is HMAC-SHA256 of the
payload under the cluster key. A frame whose MAC is missing or wrong, whose
sender is not a configured peer, or whose payload is not the expected JSON is
dropped and counted by reason in ``rejected``; it never reaches the node.
That is what keeps a process without the key from voting or claiming
leadership.

Each node opens one outbound connection per peer and only writes to it; it
accepts inbound connections and only reads from them. A send never blocks:
while a peer is unreachable its messages are dropped (Raft retransmits), and
the link reconnects in the background with exponential backoff.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import random
import socket
import struct
from collections import deque
from collections.abc import Callable

MAC_BYTES = 32
_LEN = struct.Struct(">I")
# Far above any real message (a snapshot of a test key space), far below what
# would let a stranger make us allocate gigabytes.
MAX_FRAME_BYTES = 64 * 1024 * 1024
# Messages waiting for one connected peer. Beyond this the peer is not keeping
# up and Raft is better served by dropping than by growing without bound.
MAX_QUEUED_FRAMES = 10_000
BACKOFF_MIN_S = 0.02
BACKOFF_MAX_S = 0.5
# A partition (iptables DROP) leaves TCP connections open but silent, and TCP's
# own retransmission backoff can then take minutes to notice. Unacknowledged
# data older than this kills the outbound connection so we reconnect promptly
# after the partition heals; keepalive does the same for idle inbound ones.
TCP_USER_TIMEOUT_MS = 2000
KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_PROBES = 5, 1, 3

log = logging.getLogger("raftkv.transport")


class KeyFileError(Exception):
    """The cluster key file cannot be used; the message is one line for the user."""


def read_cluster_key(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            key = f.read().strip()
    except OSError as e:
        raise KeyFileError(f"cannot read cluster key file {path}: {e.strerror or e}") from None
    if not key:
        raise KeyFileError(f"cluster key file {path} is empty")
    return key


def mac_of(key: bytes, payload: bytes) -> bytes:
    # Naming the digest ("sha256") lets the C HMAC skip a Python constructor
    # call: about 3x faster than passing hashlib.sha256, on every frame.
    return hmac.new(key, payload, "sha256").digest()


HELLO = "hello"  # transport-level: never reaches the node


def hello(src: str, dst: str) -> dict:
    return {"type": HELLO, "src": src, "dst": dst, "term": 0}


def encode_frame(key: bytes, sender: str, msg: dict) -> bytes:
    payload = json.dumps({"from": sender, "msg": msg}, separators=(",", ":")).encode()
    return _LEN.pack(MAC_BYTES + len(payload)) + mac_of(key, payload) + payload


class FrameCheck:
    """Verifies one frame body (MAC + payload); pure, so it is tested without sockets."""

    def __init__(self, key: bytes, self_id: str, peer_ids: set[str]):
        self.key = key
        self.self_id = self_id
        self.peer_ids = peer_ids
        self.rejected: dict[str, int] = {"bad_mac": 0, "unknown_peer": 0, "malformed": 0}

    def accept(self, body: bytes) -> dict | None:
        """The message inside ``body``, or None (and a counted reason) if it must be dropped."""
        if len(body) < MAC_BYTES:
            return self._reject("bad_mac")  # no room for a MAC: it is missing
        mac, payload = body[:MAC_BYTES], body[MAC_BYTES:]
        if not hmac.compare_digest(mac, mac_of(self.key, payload)):
            return self._reject("bad_mac")
        try:
            frame = json.loads(payload)
            sender, msg = frame["from"], frame["msg"]
        except (ValueError, TypeError, KeyError):
            return self._reject("malformed")
        if not isinstance(msg, dict):
            return self._reject("malformed")
        if sender not in self.peer_ids or sender == self.self_id:
            return self._reject("unknown_peer")
        if msg.get("src", sender) != sender:
            return self._reject("unknown_peer")  # a keyholder speaking for another node
        return msg

    def _reject(self, reason: str) -> None:
        self.rejected[reason] += 1
        n = self.rejected[reason]
        # Logged at 1, 10, 100, ... so a flood of forged frames cannot flood the log.
        if n == 10 ** (len(str(n)) - 1):
            log.warning("dropped peer frame: %s (%d so far)", reason, n)
        return None


def _set_socket_timeouts(writer: asyncio.StreamWriter, user_timeout: bool) -> None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    # Best effort: these options are Linux-specific, and the node must still run elsewhere.
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    for name, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE_S), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL_S),
                        ("TCP_KEEPCNT", KEEPALIVE_PROBES)):
        if hasattr(socket, name):
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    if user_timeout and hasattr(socket, "TCP_USER_TIMEOUT"):
        options.append((socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, TCP_USER_TIMEOUT_MS))
    for level, opt, value in options:
        try:
            sock.setsockopt(level, opt, value)
        except OSError:
            pass


class _PeerLink:
    """The outbound half towards one peer: a queue and a task that (re)connects and writes."""

    def __init__(self, transport: PeerTransport, peer_id: str, host: str, port: int):
        self.t = transport
        self.peer_id = peer_id
        self.host, self.port = host, port
        self.queue: deque[bytes] = deque()
        self.wakeup = asyncio.Event()
        self.connected = False
        self.broken = False
        self.closing = False
        self.writing = False
        self.writer: asyncio.StreamWriter | None = None
        # Set when the peer says hello on its own link to us: it is up, so stop backing off.
        self.peer_up = asyncio.Event()
        self.task = asyncio.create_task(self._run(), name=f"peer-link-{peer_id}")

    def flushed(self) -> bool:
        """Has everything queued so far been handed to the kernel?"""
        if self.queue or self.writing:
            return False
        w = self.writer
        return w is None or w.transport.get_write_buffer_size() == 0

    def enqueue(self, frame: bytes) -> bool:
        if not self.connected or len(self.queue) >= MAX_QUEUED_FRAMES:
            return False
        self.queue.append(frame)
        self.wakeup.set()
        return True

    async def _run(self) -> None:
        backoff = BACKOFF_MIN_S
        while not self.closing:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), timeout=1.0)
            except (TimeoutError, OSError):
                # Jitter so that nodes restarting together do not reconnect in lockstep.
                try:
                    await asyncio.wait_for(self.peer_up.wait(), backoff * (0.5 + random.random()))
                except TimeoutError:
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
                self.peer_up.clear()
                continue
            backoff = BACKOFF_MIN_S
            _set_socket_timeouts(writer, user_timeout=True)
            if self.closing:
                # Python 3.11's wait_for can return a connection despite a pending cancel.
                writer.close()
                return
            self.connected, self.broken, self.writer = True, False, writer
            log.info("peer link to %s up", self.peer_id)
            # First thing on a new link: hello, so that a peer backing off from
            # us while we were down reconnects now rather than after its backoff
            # (a restarted node would otherwise hear everyone but be unheard).
            self.queue.appendleft(encode_frame(self.t.key, self.t.self_id, hello(self.t.self_id, self.peer_id)))
            self.wakeup.set()
            watcher = asyncio.create_task(self._watch_for_close(reader))
            try:
                await self._write_until_broken(writer)
            except (OSError, ConnectionError):
                pass
            finally:
                self.connected, self.writer = False, None
                self.queue.clear()
                watcher.cancel()
                writer.close()
            if not self.closing:
                log.info("peer link to %s down; reconnecting with backoff", self.peer_id)

    async def _watch_for_close(self, reader: asyncio.StreamReader) -> None:
        # The peer never writes on this connection, so any read returning means it closed.
        try:
            await reader.read(1)
        except (OSError, ConnectionError):
            pass
        self.broken = True
        self.wakeup.set()

    async def _write_until_broken(self, writer: asyncio.StreamWriter) -> None:
        while not self.broken and not self.closing:
            await self.wakeup.wait()
            self.wakeup.clear()
            if self.queue:
                frames = list(self.queue)
                self.queue.clear()
                self.writing = True
                try:
                    writer.write(b"".join(frames))
                    await writer.drain()
                finally:
                    self.writing = False

    def close(self) -> None:
        self.closing = True
        self.wakeup.set()
        self.task.cancel()


class PeerTransport:
    """Sends node messages to peers and hands authenticated inbound messages to ``deliver``."""

    def __init__(self, self_id: str, peers: dict[str, tuple[str, int]], key: bytes,
                 deliver: Callable[[dict], None]):
        self.self_id = self_id
        self.peers = peers
        self.key = key
        self.deliver = deliver
        self.check = FrameCheck(key, self_id, set(peers))
        self.counters = {"peer_messages_sent": 0, "peer_messages_dropped": 0,
                         "peer_messages_received": 0}
        self._links: dict[str, _PeerLink] = {}
        self._server: asyncio.AbstractServer | None = None
        self._inbound: dict[asyncio.Task, asyncio.StreamWriter] = {}

    @property
    def rejected(self) -> dict[str, int]:
        return self.check.rejected

    async def start(self, listen_host: str | None = None) -> None:
        host, port = self.peers[self.self_id]
        self._server = await asyncio.start_server(self._serve_inbound, listen_host or host, port)
        for pid, (h, p) in self.peers.items():
            if pid != self.self_id:
                self._links[pid] = _PeerLink(self, pid, h, p)

    def send(self, msg: dict) -> bool:
        """Queue msg for its peer; False if it was dropped (no link to it, or its queue is full)."""
        link = self._links.get(msg.get("dst"))
        if link is None:
            log.warning("dropping message to unknown peer %r", msg.get("dst"))
            return False
        if link.enqueue(encode_frame(self.key, self.self_id, msg)):
            self.counters["peer_messages_sent"] += 1
            return True
        self.counters["peer_messages_dropped"] += 1
        return False

    async def flush(self, peer: str, timeout: float) -> bool:
        """Wait until what was sent to peer has left for the kernel; False if it has not by timeout."""
        link = self._links.get(peer)
        if link is None:
            return False
        deadline = asyncio.get_running_loop().time() + timeout
        while not link.flushed():
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.001)
        return True

    async def _serve_inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        task = asyncio.current_task()
        self._inbound[task] = writer
        _set_socket_timeouts(writer, user_timeout=False)
        try:
            while True:
                header = await reader.readexactly(_LEN.size)
                (length,) = _LEN.unpack(header)
                if length > MAX_FRAME_BYTES:
                    self.check.rejected["malformed"] += 1
                    return  # cannot resynchronise the stream: hang up
                body = await reader.readexactly(length)
                msg = self.check.accept(body)
                if msg is not None and msg.get("type") == HELLO:
                    link = self._links.get(msg.get("src"))
                    if link is not None and not link.connected:
                        link.peer_up.set()
                elif msg is not None:
                    self.counters["peer_messages_received"] += 1
                    self.deliver(msg)
        except (asyncio.IncompleteReadError, OSError, ConnectionError):
            pass
        finally:
            self._inbound.pop(task, None)
            writer.close()

    async def close(self) -> None:
        for link in self._links.values():
            link.close()
        if self._server is not None:
            self._server.close()
        # Closing the sockets ends the inbound readers cleanly (cancelling a
        # stream handler task makes asyncio log a spurious traceback).
        for writer in list(self._inbound.values()):
            writer.close()
        tasks = [link.task for link in self._links.values()] + list(self._inbound)
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
