"""Authenticated peer transport for raftkv: asyncio TCP, a challenge-response handshake, then sequenced HMAC frames.

Each node opens one outbound connection per peer and only writes to it; it
accepts inbound connections and only reads from them (after the challenge).
One connection, the dialer D to the acceptor A:

1. A sends ``MAGIC`` + a fresh random 16-byte challenge.
2. D sends its hello: ``<u16 length> <mac 32> <payload JSON {"from": D, "to": A}>``,
   the MAC being HMAC-SHA256 under the cluster key of a label, the challenge and
   the payload. A checks it, and that D is a configured peer and A is meant.
   Until then A holds at most ``HELLO_MAX`` bytes for the connection, and hangs
   up on anything else (a length over that, a wrong MAC, an unknown peer, or
   no hello within ``HANDSHAKE_TIMEOUT_S``): a stranger can make a node
   allocate only that small buffer, whatever length prefix it sends.
3. Both derive the link key HMAC(cluster key, label + challenge + hello
   payload), and D sends frames
   ``<u32 n> <u64 seq> <u8 flags> <data: n bytes> <mac 32>``, the MAC over
   everything before it under the link key. ``seq`` counts the link's frames
   from 0. A frame whose seq is below the next one expected is a replay: it is
   dropped and counted (``replay``); one above it is out of order: dropped,
   counted (``out_of_order``), and the link is closed so that D reconnects with
   a fresh challenge. A captured frame replayed on a new connection fails its
   MAC, since the link key comes from that connection's challenge; a captured
   hello fails too, for the same reason. ``n`` is at most ``CHUNK_BYTES``.

A message (JSON) longer than ``CHUNK_BYTES`` (a snapshot) travels as a run of
chunk frames (flags MORE ... LAST), each authenticated and sequenced; the
receiver reassembles at most ``MAX_MESSAGE_BYTES`` of it, and only on an
authenticated link. The sender writes one chunk at a time and sends whatever
small messages queued up meanwhile between chunks, so heartbeats do not wait
behind a snapshot. A message carrying a snapshot is also encoded a chunk at a
time as it goes (``jsonstream.encode_pieces``; so is an append of many
entries), and the receiver decodes a
reassembled message in bounded steps between turns of the loop, reading
nothing more from that connection meanwhile (so its messages stay in order):
neither side holds the loop for one big ``json.dumps`` or ``json.loads``.
(Raft-level chunking with per-chunk acknowledgements is not done: the whole
message is still reassembled in memory, up to ``MAX_MESSAGE_BYTES``.)

Everything dropped is counted by reason in ``rejected``; it never reaches the
node. That is what keeps a process without the key from voting or claiming
leadership. ``verify=False`` is the ``no-peer-auth`` deliberate bug: hellos
and frames are taken without checking a MAC or a sequence number.

A send never blocks: while a peer is unreachable its messages are dropped
(Raft retransmits), and the link reconnects in the background with
exponential backoff.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import random
import socket
import struct
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .jsonstream import LONG_LIST, STEP_PIECES, Decoder, encode_pieces

MAC_BYTES = 32
MAGIC = b"RKV2"
CHALLENGE_BYTES = 16
# What a peer that has not authenticated can make us hold: one hello.
HELLO_MAX = 256
HANDSHAKE_TIMEOUT_S = 2.0
# Connections still in their handshake; beyond this the oldest is dropped, so
# a flood of silent connections cannot exhaust file descriptors (and a genuine
# peer's new connection still gets in).
MAX_HANDSHAKING = 64
# The largest frame body; longer messages are chunked.
CHUNK_BYTES = 256 * 1024
# One reassembled message (a snapshot of a test key space), authenticated peers only.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# Messages waiting for one connected peer. Beyond this the peer is not keeping
# up and Raft is better served by dropping than by growing without bound.
MAX_QUEUED_FRAMES = 10_000
BACKOFF_MIN_S = 0.02
BACKOFF_MAX_S = 0.5
# A link that lived this long was healthy: the next reconnect starts from the
# shortest backoff. One that the peer hung up on at once (a refused hello) keeps backing off.
LINK_STABLE_S = 1.0
# A partition (iptables DROP) leaves TCP connections open but silent, and TCP's
# own retransmission backoff can then take minutes to notice. Unacknowledged
# data older than this kills the outbound connection so we reconnect promptly
# after the partition heals; keepalive does the same for idle inbound ones.
TCP_USER_TIMEOUT_MS = 2000
KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_PROBES = 5, 1, 3

_HELLO_LEN = struct.Struct(">H")
_HEADER = struct.Struct(">IQB")  # data length, seq, flags
WHOLE, MORE, LAST = 0, 1, 2  # flags: a whole message; a chunk with more to come; the last chunk
HELLO_LABEL = b"raftkv hello\x00"
LINK_LABEL = b"raftkv link\x00"

REJECT_REASONS = ("bad_hello", "bad_mac", "unknown_peer", "malformed", "replay", "out_of_order",
                  "oversize", "handshake_timeout", "handshake_evicted")

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


def mac_of(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, "sha256")


def hello_payload(sender: str, dst: str) -> bytes:
    return json.dumps({"from": sender, "to": dst}, separators=(",", ":")).encode()


def encode_hello(key: bytes, challenge: bytes, sender: str, dst: str) -> bytes:
    """The dialer's hello for a connection whose acceptor sent `challenge`."""
    payload = hello_payload(sender, dst)
    return _HELLO_LEN.pack(MAC_BYTES + len(payload)) + mac_of(key, HELLO_LABEL + challenge + payload) + payload


def link_key(key: bytes, challenge: bytes, payload: bytes) -> bytes:
    """The key of one connection's frames: bound to its challenge, so no frame outlives its connection."""
    return mac_of(key, LINK_LABEL + challenge + payload)


def dialer_bytes(key: bytes, challenge: bytes, sender: str, dst: str, msgs: list[dict]) -> bytes:
    """What a dialer holding `key` sends on a connection whose acceptor sent `challenge`: its hello, then msgs."""
    framer = FrameWriter(link_key(key, challenge, hello_payload(sender, dst)))
    frames = [f for m in msgs for f in framer.frames(json.dumps(m, separators=(",", ":")).encode())]
    return encode_hello(key, challenge, sender, dst) + b"".join(frames)


class FrameWriter:
    """The sending half of one link's framing: numbers and signs frames. Pure."""

    def __init__(self, key: bytes):
        self._mac = hmac.new(key, digestmod="sha256")  # copied per frame: the key's padding is done once
        self.seq = 0

    def frame(self, data: bytes, flags: int = WHOLE) -> bytes:
        header = _HEADER.pack(len(data), self.seq, flags)
        self.seq += 1
        h = self._mac.copy()
        h.update(header)
        h.update(data)
        return header + data + h.digest()

    def frames(self, payload: bytes) -> list[bytes]:
        """`payload` as one frame, or as chunk frames when it is longer than CHUNK_BYTES."""
        if len(payload) <= CHUNK_BYTES:
            return [self.frame(payload)]
        out = []
        for at in range(0, len(payload), CHUNK_BYTES):
            last = at + CHUNK_BYTES >= len(payload)
            out.append(self.frame(payload[at:at + CHUNK_BYTES], LAST if last else MORE))
        return out


class _Outgoing:
    """A long message encoded a chunk at a time as it is sent: never one json.dumps of all of it."""

    def __init__(self, pieces: Iterator[bytes]):
        self.pieces = pieces
        self.buf = bytearray()
        self.done = False

    def next_chunk(self) -> tuple[bytes, bool]:
        """Up to CHUNK_BYTES of the encoding (less if STEP_PIECES pieces did not fill it), and whether it is the last."""
        n = 0
        while not self.done and len(self.buf) < CHUNK_BYTES and n < STEP_PIECES:
            piece = next(self.pieces, None)
            if piece is None:
                self.done = True
            else:
                self.buf += piece
                n += 1
        data = bytes(self.buf[:CHUNK_BYTES])
        del self.buf[:CHUNK_BYTES]
        return data, self.done and not self.buf


_dumps = json.JSONEncoder(separators=(",", ":")).encode


def encode_append(msg: dict) -> bytes | _Outgoing:
    """An append of many entries: one json.dumps per entry, joined at once while it stays under a chunk.

    Its entries are each bounded by the client body limit, but there can be
    hundreds of them, so it may be far too long for one dumps on the loop; walked
    piece by piece (encode_pieces) every time, though, the 20-30 entries of a
    busy leader's batch cost the loop several times what one dumps per entry
    does. So: one dumps per entry; under CHUNK_BYTES in all (every batch of
    small writes), the bytes at once; past that, the rest is encoded a chunk
    at a time as it goes out, as a snapshot is. (The entries come last in the
    object: any JSON reader takes the keys in any order.)
    """
    head = _dumps({k: v for k, v in msg.items() if k != "entries"})
    prefix = (head[:-1] + ',"entries":[').encode() if head != "{}" else b'{"entries":['
    entries = iter(msg["entries"])
    parts, size = [prefix], len(prefix)
    for e in entries:
        piece = _dumps(e).encode()
        parts.append(piece if len(parts) == 1 else b"," + piece)
        size += len(piece) + 1
        if size > CHUNK_BYTES:
            return _Outgoing(_append_pieces(parts, entries))
    parts.append(b"]}")
    return b"".join(parts)


def _append_pieces(done: list[bytes], rest: Iterator[dict]) -> Iterator[bytes]:
    yield from done
    for e in rest:
        yield b"," + _dumps(e).encode()
    yield b"]}"


@dataclass
class Assembled:
    """A reassembled long message, handed out undecoded (InboundLink(defer_long=True)): see _Inbound."""

    data: bytearray


def count_reject(rejected: dict[str, int], reason: str) -> None:
    rejected[reason] = rejected.get(reason, 0) + 1
    n = rejected[reason]
    # Logged at 1, 10, 100, ... so a flood of forged frames cannot flood the log.
    if n == 10 ** (len(str(n)) - 1):
        log.warning("dropped peer frame: %s (%d so far)", reason, n)


class InboundLink:
    """The receiving half of one connection, sans I/O: `feed` it bytes, get authenticated messages.

    Before the hello checks out it buffers at most 2 + HELLO_MAX bytes; after,
    one frame (at most CHUNK_BYTES of data) plus a message being reassembled
    (at most MAX_MESSAGE_BYTES). When the connection must end, `closed` says
    why (one of REJECT_REASONS, already counted); feed then returns nothing more.
    """

    def __init__(self, key: bytes, self_id: str, peer_ids: set[str], challenge: bytes,
                 rejected: dict[str, int], verify: bool = True, defer_long: bool = False):
        self.defer_long = defer_long  # reassembled messages come out as Assembled, for the caller to decode
        self.key = key
        self.self_id = self_id
        self.peer_ids = peer_ids
        self.challenge = challenge
        self.rejected = rejected
        self.verify = verify
        self.peer: str | None = None  # set once the hello checked out
        self.closed: str | None = None
        self.next_seq = 0
        self._buf = bytearray()
        self._mac: hmac.HMAC | None = None
        self._assembling: bytearray | None = None

    def buffered(self) -> int:
        """Bytes held for this connection right now (what a stranger can make us allocate)."""
        return len(self._buf) + (len(self._assembling) if self._assembling is not None else 0)

    def feed(self, data: bytes) -> list[dict | Assembled]:
        if self.closed is not None:
            return []
        buf = self._buf
        buf += data
        out: list[dict] = []
        pos = 0
        if self.peer is None:
            pos = self._hello(buf)
            if self.peer is None:
                if self.closed is not None:
                    buf.clear()
                return out
        end = len(buf)
        header_size = _HEADER.size
        while self.closed is None and end - pos >= header_size:
            n, seq, flags = _HEADER.unpack_from(buf, pos)
            if n > CHUNK_BYTES:
                self._close("oversize")
                break
            stop = pos + header_size + n + MAC_BYTES
            if stop > end:
                break
            signed = buf[pos:stop - MAC_BYTES]
            mac = buf[stop - MAC_BYTES:stop]
            pos = stop
            if self.verify:
                h = self._mac.copy()
                h.update(signed)
                if not hmac.compare_digest(h.digest(), mac):
                    self._close("bad_mac")
                    break
                if seq != self.next_seq:
                    if seq < self.next_seq:
                        count_reject(self.rejected, "replay")
                        continue
                    self._close("out_of_order")
                    break
            self.next_seq = seq + 1
            msg = self._message(signed, header_size, flags)
            if msg is not None:
                out.append(msg)
        if self.closed is not None:
            buf.clear()
            self._assembling = None
        elif pos:
            del buf[:pos]
        return out

    def _hello(self, buf: bytearray) -> int:
        """Reads the hello if it is all there; the bytes it took (0 if not yet)."""
        if len(buf) < _HELLO_LEN.size:
            return 0
        (n,) = _HELLO_LEN.unpack_from(buf, 0)
        if n < MAC_BYTES or n > HELLO_MAX:
            self._close("bad_hello")
            return 0
        if len(buf) < _HELLO_LEN.size + n:
            return 0
        mac = bytes(buf[2:2 + MAC_BYTES])
        payload = bytes(buf[2 + MAC_BYTES:2 + n])
        if self.verify and not hmac.compare_digest(mac, mac_of(self.key, HELLO_LABEL + self.challenge + payload)):
            self._close("bad_hello")
            return 0
        try:
            hello = json.loads(payload)
            sender, dst = hello["from"], hello["to"]
        except (ValueError, TypeError, KeyError):
            self._close("malformed")
            return 0
        if not isinstance(sender, str) or sender not in self.peer_ids or sender == self.self_id \
                or dst != self.self_id:
            self._close("unknown_peer")
            return 0
        self.peer = sender
        self._mac = hmac.new(link_key(self.key, self.challenge, payload), digestmod="sha256")
        return _HELLO_LEN.size + n

    def _message(self, signed: bytearray, at: int, flags: int) -> dict | Assembled | None:
        if flags == WHOLE:
            # Also between the chunks of a long message: the sender interleaves small ones.
            return self._decode(signed[at:])
        if flags not in (MORE, LAST):
            self._close("malformed")
            return None
        if self._assembling is None:
            self._assembling = bytearray()
        if len(self._assembling) + len(signed) - at > MAX_MESSAGE_BYTES:
            self._close("oversize")
            return None
        self._assembling += memoryview(signed)[at:]
        if flags == MORE:
            return None
        whole, self._assembling = self._assembling, None
        return Assembled(whole) if self.defer_long else self._decode(whole)

    def _decode(self, data: bytes | bytearray) -> dict | None:
        try:
            msg = json.loads(data)
        except (ValueError, RecursionError):
            count_reject(self.rejected, "malformed")
            return None
        return self.check(msg)

    def check(self, msg) -> dict | None:
        """A decoded message if it is one this link may carry, else None (counted)."""
        if not isinstance(msg, dict):
            count_reject(self.rejected, "malformed")
            return None
        if msg.get("src", self.peer) != self.peer:
            count_reject(self.rejected, "unknown_peer")  # a keyholder speaking for another node
            return None
        return msg

    def _close(self, reason: str) -> None:
        count_reject(self.rejected, reason)
        self.closed = reason


def _write(writer: asyncio.StreamWriter, data: bytes) -> bool:
    """Write unless the transport is closed; False if it is. A peer's reset closes the transport before
    our watcher task runs; asyncio's transport then drops what is written, but uvloop's raises
    RuntimeError, which on the driver's path of every send stopped the node (seen in the nightly)."""
    if writer.transport.is_closing():
        return False
    try:
        writer.write(data)
    except RuntimeError:
        return False
    return True


def _set_socket_timeouts(sock: socket.socket | None, user_timeout: bool) -> None:
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
    """The outbound half towards one peer: queues and a task that (re)connects, says hello and writes."""

    def __init__(self, transport: PeerTransport, peer_id: str, host: str, port: int):
        self.t = transport
        self.peer_id = peer_id
        self.host, self.port = host, port
        self.queue: deque[bytes] = deque()  # encoded messages up to CHUNK_BYTES: one frame each
        self.big: deque[bytes | _Outgoing] = deque()  # longer ones, sent a chunk at a time
        self._big_at = 0  # how much of big[0] has been written
        self.wakeup = asyncio.Event()
        self.connected = False
        self.broken = False
        self.closing = False
        self.writing = False
        self.writer: asyncio.StreamWriter | None = None
        self.framer: FrameWriter | None = None
        # Set when the peer says hello on its link to us: it is up, so stop backing off.
        self.peer_up = asyncio.Event()
        self.task = asyncio.create_task(self._run(), name=f"peer-link-{peer_id}")

    def flushed(self) -> bool:
        """Has everything queued so far been handed to the kernel?"""
        if self.queue or self.big or self.writing:
            return False
        w = self.writer
        return w is None or w.transport.get_write_buffer_size() == 0

    def enqueue(self, payload: bytes | _Outgoing) -> bool:
        if not self.connected or len(self.queue) + len(self.big) >= MAX_QUEUED_FRAMES:
            return False
        is_small = isinstance(payload, bytes) and len(payload) <= CHUNK_BYTES
        w = self.writer
        if w is not None and w.transport.is_closing():
            self._lost()  # reset by the peer: the watcher will see it, but nothing more goes this way
            return False
        if (is_small and not self.queue and not self.big and not self.writing and not self.broken
                and w is not None and w.transport.get_write_buffer_size() == 0):
            # Nothing ahead of it and nothing backed up: hand it to the kernel now. Through the
            # writer task it waited a turn of the loop, on the path of every append and every answer.
            if not _write(w, self.framer.frame(payload)):
                self._lost()
                return False
            return True
        (self.queue if is_small else self.big).append(payload)
        self.wakeup.set()
        return True

    def _lost(self) -> None:
        self.broken = True
        self.wakeup.set()

    async def _backoff(self, backoff: float) -> float:
        # Jitter so that nodes restarting together do not reconnect in lockstep.
        try:
            await asyncio.wait_for(self.peer_up.wait(), backoff * (0.5 + random.random()))
        except TimeoutError:
            backoff = min(backoff * 2, BACKOFF_MAX_S)
        self.peer_up.clear()
        return backoff

    async def _run(self) -> None:
        backoff = BACKOFF_MIN_S
        loop = asyncio.get_running_loop()
        while not self.closing:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), timeout=1.0)
            except (TimeoutError, OSError):
                backoff = await self._backoff(backoff)
                continue
            _set_socket_timeouts(writer.get_extra_info("socket"), user_timeout=True)
            if self.closing:
                # Python 3.11's wait_for can return a connection despite a pending cancel.
                writer.close()
                return
            try:
                greeting = await asyncio.wait_for(reader.readexactly(len(MAGIC) + CHALLENGE_BYTES),
                                                  HANDSHAKE_TIMEOUT_S)
            except (TimeoutError, OSError, asyncio.IncompleteReadError):
                writer.close()
                backoff = await self._backoff(backoff)
                continue
            if not greeting.startswith(MAGIC):
                log.warning("peer %s at %s:%d does not speak this protocol (got %r)", self.peer_id,
                            self.host, self.port, greeting[:len(MAGIC)])
                writer.close()
                backoff = await self._backoff(BACKOFF_MAX_S)
                continue
            challenge = greeting[len(MAGIC):]
            t = self.t
            self.framer = FrameWriter(link_key(t.key, challenge, hello_payload(t.self_id, self.peer_id)))
            # The hello goes first; it also tells a peer backing off from us
            # that we are up, so it reconnects now rather than after its
            # backoff (a restarted node would otherwise hear everyone but be unheard).
            if not _write(writer, encode_hello(t.key, challenge, t.self_id, self.peer_id)):
                writer.close()
                backoff = await self._backoff(backoff)
                continue
            self.connected, self.broken, self.writer = True, False, writer
            up_at = loop.time()
            log.info("peer link to %s up", self.peer_id)
            watcher = asyncio.create_task(self._watch_for_close(reader))
            try:
                await self._write_until_broken(writer)
            except (OSError, ConnectionError):
                pass
            finally:
                self.connected, self.writer, self.framer = False, None, None
                self.queue.clear()
                self.big.clear()
                self._big_at = 0
                watcher.cancel()
                writer.close()
            if self.closing:
                return
            log.info("peer link to %s down; reconnecting with backoff", self.peer_id)
            if loop.time() - up_at >= LINK_STABLE_S:
                backoff = BACKOFF_MIN_S
            else:
                backoff = await self._backoff(backoff)

    async def _watch_for_close(self, reader: asyncio.StreamReader) -> None:
        # The peer writes nothing after its challenge, so any read returning means it closed.
        try:
            await reader.read(1)
        except (OSError, ConnectionError):
            pass
        self.broken = True
        self.wakeup.set()

    def _next_write(self) -> bytes:
        """Every small message queued, then at most one chunk of the first long one."""
        framer = self.framer
        parts = [framer.frame(p) for p in self.queue]
        self.queue.clear()
        if self.big and isinstance(self.big[0], _Outgoing):
            data, last = self.big[0].next_chunk()
            parts.append(framer.frame(data, LAST if last else MORE))
            self._big_at += len(data)
            if last:
                self.big.popleft()
                self._big_at = 0
        elif self.big:
            payload, at = self.big[0], self._big_at
            end = min(len(payload), at + CHUNK_BYTES)
            parts.append(framer.frame(payload[at:end], LAST if end == len(payload) else MORE))
            if end == len(payload):
                self.big.popleft()
                self._big_at = 0
            else:
                self._big_at = end
        return b"".join(parts)

    async def _write_until_broken(self, writer: asyncio.StreamWriter) -> None:
        while not self.broken and not self.closing:
            await self.wakeup.wait()
            self.wakeup.clear()
            while (self.queue or self.big) and not self.broken and not self.closing:
                self.writing = True
                try:
                    if not _write(writer, self._next_write()):
                        self._lost()
                        break
                    await writer.drain()
                    if self.big:
                        # drain() returns at once while the kernel takes it all (loopback): let the
                        # driver queue its next messages, to go out before the next chunk.
                        await asyncio.sleep(0)
                finally:
                    self.writing = False

    def close(self) -> None:
        self.closing = True
        self.wakeup.set()
        self.task.cancel()


class _Inbound(asyncio.Protocol):
    """One accepted connection: sends the challenge, then feeds an InboundLink and delivers what it yields."""

    def __init__(self, t: PeerTransport):
        self.t = t
        self.link: InboundLink | None = None
        self.transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._decoding: asyncio.Task | None = None  # a long message being decoded; reading paused meanwhile
        self._told_closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        t = self.t
        self.transport = transport  # type: ignore[assignment]
        _set_socket_timeouts(transport.get_extra_info("socket"), user_timeout=False)
        challenge = os.urandom(CHALLENGE_BYTES)
        self.link = InboundLink(t.key, t.self_id, t.peer_ids, challenge, t.rejected, verify=t.verify,
                                defer_long=True)
        t._inbound.add(self)
        t._handshaking[self] = None
        if len(t._handshaking) > MAX_HANDSHAKING:
            oldest = next(iter(t._handshaking))
            oldest._drop("handshake_evicted")
        self._timer = asyncio.get_running_loop().call_later(HANDSHAKE_TIMEOUT_S, self._drop, "handshake_timeout")
        transport.write(MAGIC + challenge)

    def _drop(self, reason: str) -> None:
        if self.link is not None and self.link.peer is None and self.link.closed is None:
            self.link.closed = reason
            count_reject(self.t.rejected, reason)
        self._authenticated_or_gone()
        if self.transport is not None:
            self.transport.abort()

    def _authenticated_or_gone(self) -> None:
        self.t._handshaking.pop(self, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def data_received(self, data: bytes) -> None:
        link = self.link
        was_authenticated = link.peer is not None
        msgs = link.feed(data)
        t = self.t
        if not was_authenticated and link.peer is not None:
            self._authenticated_or_gone()
            out = t._links.get(link.peer)
            if out is not None and not out.connected:
                out.peer_up.set()
        self._deliver(msgs)
        if link.closed is not None:
            self._authenticated_or_gone()
            self.transport.abort()

    def _deliver(self, msgs: list) -> None:
        t = self.t
        for i, msg in enumerate(msgs):
            if isinstance(msg, Assembled):
                # Nothing more is read from this connection until it is decoded: its messages stay in order.
                self.transport.pause_reading()
                self._decoding = asyncio.create_task(self._decode_then_deliver(msg, msgs[i + 1:]))
                t._decoding.add(self._decoding)
                return
            t.counters["peer_messages_received"] += 1
            t.deliver(msg)

    async def _decode_then_deliver(self, assembled: Assembled, rest: list) -> None:
        decoder = Decoder(assembled.data)
        del assembled.data  # the decoder holds the only reference: freed as soon as it is done
        msg = None
        try:
            while not decoder.step():
                await asyncio.sleep(0)
            msg = self.link.check(decoder.value)
        except (ValueError, RecursionError):
            count_reject(self.t.rejected, "malformed")
        finally:
            self.t._decoding.discard(self._decoding)
            self._decoding = None
        if msg is not None:
            self.t.counters["peer_messages_received"] += 1
            self.t.deliver(msg)
        self._deliver(rest)
        if self._decoding is None and not self.transport.is_closing():
            self.transport.resume_reading()

    def eof_received(self) -> bool:
        self._peer_closed()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self._peer_closed()  # reset by the peer's end (our own abort() brings no exception)
        self._authenticated_or_gone()
        self.t._inbound.discard(self)

    def _peer_closed(self) -> None:
        peer = self.link.peer if self.link is not None else None
        if peer is not None and not self._told_closed:
            self._told_closed = True
            self.t.link_lost(peer)


class PeerTransport:
    """Sends node messages to peers and hands authenticated inbound messages to ``deliver``."""

    def __init__(self, self_id: str, peers: dict[str, tuple[str, int]], key: bytes,
                 deliver: Callable[[dict], None], verify: bool = True,
                 link_lost: Callable[[str], None] = lambda peer: None):
        self.self_id = self_id
        self.peers = peers
        self.peer_ids = set(peers)
        self.key = key
        self.deliver = deliver
        # Called with a peer's id when that peer closes (or resets) its authenticated link to us:
        # the hint a follower takes that its leader's process has died.
        self.link_lost = link_lost
        self.verify = verify  # False: the no-peer-auth bug
        self.rejected: dict[str, int] = dict.fromkeys(REJECT_REASONS, 0)
        self.counters = {"peer_messages_sent": 0, "peer_messages_dropped": 0,
                         "peer_messages_received": 0}
        self._links: dict[str, _PeerLink] = {}
        self._server: asyncio.AbstractServer | None = None
        self._inbound: set[_Inbound] = set()
        self._handshaking: OrderedDict[_Inbound, None] = OrderedDict()
        self._decoding: set[asyncio.Task] = set()  # long inbound messages being decoded

    async def start(self, listen_host: str | None = None) -> None:
        host, port = self.peers[self.self_id]
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Inbound(self), listen_host or host, port)
        for pid, (h, p) in self.peers.items():
            if pid != self.self_id:
                self._links[pid] = _PeerLink(self, pid, h, p)

    def send(self, msg: dict) -> bool:
        """Queue msg for its peer; False if it was dropped (no link to it, or its queue is full)."""
        link = self._links.get(msg.get("dst"))
        if link is None:
            log.warning("dropping message to unknown peer %r", msg.get("dst"))
            return False
        # A snapshot, or an append of many entries (each up to a client body), is encoded a chunk at a
        # time as it goes out; everything else is small enough for one dumps.
        if "snapshot" in msg:
            payload = _Outgoing(encode_pieces(msg))
        elif len(msg.get("entries") or ()) > LONG_LIST:
            payload = encode_append(msg)
        else:
            payload = json.dumps(msg, separators=(",", ":")).encode()
        if link.connected and link.enqueue(payload):
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

    async def close(self) -> None:
        for link in self._links.values():
            link.close()
        if self._server is not None:
            self._server.close()
        for conn in list(self._inbound):
            if conn.transport is not None:
                conn.transport.abort()
        for task in list(self._decoding):
            task.cancel()
        tasks = [link.task for link in self._links.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
