"""raftkv's peer transport: a stranger gets a small buffer and a hang-up, a replayed frame is dropped and counted.

Most tests drive the real frame parser (`InboundLink`) directly with bytes; the
socket tests at the end check that the asyncio side uses it as it should.
"""

import asyncio
import json
import os
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import targets.raftkv.transport as transport
from targets.raftkv.transport import (
    CHALLENGE_BYTES,
    CHUNK_BYTES,
    HELLO_MAX,
    MAC_BYTES,
    MAGIC,
    FrameWriter,
    InboundLink,
    KeyFileError,
    PeerTransport,
    dialer_bytes,
    encode_hello,
    hello_payload,
    link_key,
    read_cluster_key,
)

KEY = b"cluster-secret"
PEERS = {"n1", "n2", "n3"}
APPEND = {"type": "append", "src": "n2", "dst": "n1", "term": 3, "prev_index": 0, "prev_term": 0,
          "entries": [], "commit": 0, "seq": 1}
FRAME_OVERHEAD = struct.calcsize(">IQB") + MAC_BYTES


def challenge() -> bytes:
    return os.urandom(CHALLENGE_BYTES)


def receiver(ch: bytes, verify: bool = True) -> InboundLink:
    return InboundLink(KEY, "n1", PEERS, ch, {}, verify=verify)


def framer_for(ch: bytes, sender: str = "n2", dst: str = "n1", key: bytes = KEY) -> FrameWriter:
    return FrameWriter(link_key(key, ch, hello_payload(sender, dst)))


def encoded(msg: dict) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode()


# ---- the handshake -------------------------------------------------------------

def test_a_dialer_with_the_key_is_authenticated_and_its_frames_delivered():
    ch = challenge()
    link = receiver(ch)
    msgs = [APPEND, {**APPEND, "seq": 2}]
    assert link.feed(dialer_bytes(KEY, ch, "n2", "n1", msgs)) == msgs
    assert link.peer == "n2" and link.closed is None and link.next_seq == 2
    assert link.buffered() == 0


@pytest.mark.parametrize("key", [b"guess", b""])
def test_a_hello_without_the_key_is_refused_and_the_connection_closed(key):
    ch = challenge()
    link = receiver(ch)
    assert link.feed(dialer_bytes(key, ch, "n2", "n1", [APPEND])) == []
    assert link.closed == "bad_hello" and link.peer is None and link.rejected["bad_hello"] == 1
    assert link.feed(dialer_bytes(KEY, ch, "n2", "n1", [APPEND])) == []  # nothing more on that connection


def test_a_captured_hello_does_not_open_another_connection():
    captured = dialer_bytes(KEY, challenge(), "n2", "n1", [APPEND])  # a genuine exchange, recorded
    link = receiver(challenge())  # a new connection: a new challenge
    assert link.feed(captured) == []
    assert link.closed == "bad_hello"


@pytest.mark.parametrize("sender,dst", [("n9", "n1"), ("n1", "n1"), ("n2", "n3")])
def test_a_keyholder_must_be_a_peer_and_talk_to_us(sender, dst):
    ch = challenge()
    link = receiver(ch)
    assert link.feed(dialer_bytes(KEY, ch, sender, dst, [APPEND])) == []
    assert link.closed == "unknown_peer"


def test_an_oversized_hello_length_is_refused_before_anything_is_buffered():
    link = receiver(challenge())
    assert link.feed(struct.pack(">H", HELLO_MAX + 1)) == []
    assert link.closed == "bad_hello" and link.buffered() == 0
    # the old wire format's 4-byte length of a 64 MiB frame reads as a hello length of 1024
    link = receiver(challenge())
    link.feed(struct.pack(">I", 64 * 1024 * 1024) + b"x" * 1000)
    assert link.closed == "bad_hello" and link.buffered() == 0


def test_a_hello_arriving_a_byte_at_a_time_is_read_once_complete():
    ch = challenge()
    link = receiver(ch)
    data = dialer_bytes(KEY, ch, "n2", "n1", [APPEND])
    got = [m for b in data for m in link.feed(bytes([b]))]
    assert got == [APPEND] and link.peer == "n2"


# ---- frames on an authenticated link ---------------------------------------------

def authenticated(ch: bytes | None = None, verify: bool = True) -> tuple[InboundLink, FrameWriter]:
    ch = ch or challenge()
    link = receiver(ch, verify)
    assert link.feed(encode_hello(KEY, ch, "n2", "n1")) == []
    assert link.peer == "n2"
    return link, framer_for(ch)


def test_a_replayed_frame_is_dropped_and_counted_and_the_link_goes_on():
    link, w = authenticated()
    first = w.frame(encoded(APPEND))
    assert link.feed(first) == [APPEND]
    assert link.feed(first * 3) == []
    assert link.rejected["replay"] == 3 and link.closed is None
    nxt = {**APPEND, "seq": 2}
    assert link.feed(w.frame(encoded(nxt))) == [nxt]


def test_a_frame_out_of_order_is_dropped_and_closes_the_link():
    link, w = authenticated()
    w.frame(encoded(APPEND))  # seq 0, never delivered
    assert link.feed(w.frame(encoded(APPEND))) == []
    assert link.closed == "out_of_order" and link.rejected["out_of_order"] == 1


def test_a_frame_captured_on_one_connection_fails_its_mac_on_another():
    link_a, w_a = authenticated()
    frame = w_a.frame(encoded(APPEND))
    assert link_a.feed(frame) == [APPEND]
    link_b, _ = authenticated()  # the same peer, reconnected: same seq 0, another link key
    assert link_b.feed(frame) == []
    assert link_b.closed == "bad_mac"


def test_a_tampered_frame_fails_its_mac():
    link, w = authenticated()
    frame = bytearray(w.frame(encoded(APPEND)))
    frame[20] ^= 1
    assert link.feed(bytes(frame)) == []
    assert link.closed == "bad_mac"


def test_a_frame_longer_than_a_chunk_is_refused_from_its_header():
    link, _ = authenticated()
    assert link.feed(struct.pack(">IQB", CHUNK_BYTES + 1, 0, 0)) == []
    assert link.closed == "oversize" and link.buffered() == 0


def test_a_keyholder_speaking_for_another_node_is_dropped():
    link, w = authenticated()
    assert link.feed(w.frame(encoded({**APPEND, "src": "n3"}))) == []
    assert link.rejected["unknown_peer"] == 1 and link.closed is None


def test_signed_non_json_or_non_object_payloads_are_malformed():
    link, w = authenticated()
    assert link.feed(w.frame(b"not json") + w.frame(b"[1, 2]") + w.frame(b"[" * 100_000)) == []
    assert link.rejected["malformed"] == 3 and link.closed is None


def test_a_long_message_travels_in_chunks_with_small_ones_between_them():
    link, w = authenticated()
    big = {"type": "snapshot", "src": "n2", "dst": "n1", "term": 3, "seq": 1,
           "snapshot": {"index": 9, "term": 3, "state": {"k": "x" * (3 * CHUNK_BYTES)}, "members": []}}
    payload = encoded(big)
    chunks = [payload[i:i + CHUNK_BYTES] for i in range(0, len(payload), CHUNK_BYTES)]
    assert len(chunks) == 4
    stream = b""
    for i, c in enumerate(chunks):
        stream += w.frame(c, transport.LAST if i == len(chunks) - 1 else transport.MORE)
        stream += w.frame(encoded({**APPEND, "seq": 10 + i}))  # a heartbeat between chunks
    got = link.feed(stream)
    assert [m["type"] for m in got] == ["append", "append", "append", "snapshot", "append"]
    assert got[3] == big
    # FrameWriter.frames chunks the same way, every frame within the bound
    frames = w.frames(payload)
    assert len(frames) == 4 and all(len(f) <= CHUNK_BYTES + FRAME_OVERHEAD for f in frames)


def test_reassembly_is_bounded(monkeypatch):
    monkeypatch.setattr(transport, "MAX_MESSAGE_BYTES", 2 * CHUNK_BYTES)
    link, w = authenticated()
    chunk = b"x" * CHUNK_BYTES
    assert link.feed(w.frame(chunk, transport.MORE) + w.frame(chunk, transport.MORE)) == []
    assert link.closed is None
    assert link.feed(w.frame(b"x", transport.LAST)) == []
    assert link.closed == "oversize" and link.buffered() == 0


def test_the_no_peer_auth_bug_takes_any_hello_and_any_frame():
    ch = challenge()
    link = receiver(ch, verify=False)
    wrong = dialer_bytes(b"guess", ch, "n2", "n1", [APPEND, APPEND])
    assert link.feed(wrong) == [APPEND, APPEND]
    # ... but a stranger still has to claim a member's id
    link = receiver(ch, verify=False)
    assert link.feed(dialer_bytes(b"guess", ch, "n9", "n1", [APPEND])) == []
    assert link.closed == "unknown_peer"


def test_the_key_file_must_be_readable_and_non_empty(tmp_path):
    (tmp_path / "key").write_text("  s3cret\n")
    assert read_cluster_key(str(tmp_path / "key")) == b"s3cret"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(KeyFileError, match="empty"):
        read_cluster_key(str(tmp_path / "empty"))
    with pytest.raises(KeyFileError, match="cannot read"):
        read_cluster_key(str(tmp_path / "missing"))


# ---- hostile bytes (hypothesis) -----------------------------------------------

def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points + [len(data)]:
        pieces.append(data[last:p])
        last = p
    return pieces


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=8))
def test_bytes_from_a_stranger_never_yield_a_message_and_stay_within_one_hello(data, cuts):
    link = receiver(challenge())
    for piece in splits(data, cuts):
        assert link.feed(piece) == []
        assert link.buffered() <= 2 + HELLO_MAX
    assert link.peer is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=8))
def test_bytes_after_a_genuine_hello_never_yield_a_message_and_stay_within_one_frame(data, cuts):
    link, _ = authenticated()
    for piece in splits(data, cuts):
        assert link.feed(piece) == []
        assert link.buffered() <= CHUNK_BYTES + FRAME_OVERHEAD
    assert sum(v for k, v in link.rejected.items() if k != "replay") <= 1  # closed at most once


messages = st.lists(
    st.fixed_dictionaries({"type": st.sampled_from(["append", "vote", "append_resp"]),
                           "src": st.just("n2"), "dst": st.just("n1"), "term": st.integers(0, 10**18),
                           "pad": st.text(max_size=50)}),
    min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(messages, st.lists(st.integers(0, 10_000), max_size=12))
def test_a_genuine_stream_cut_anywhere_yields_exactly_its_messages(msgs, cuts):
    ch = challenge()
    link = receiver(ch)
    got = [m for piece in splits(dialer_bytes(KEY, ch, "n2", "n1", msgs), cuts) for m in link.feed(piece)]
    assert got == msgs and link.closed is None


@settings(max_examples=300, deadline=None)
@given(messages, st.data())
def test_a_genuine_stream_tampered_anywhere_yields_only_genuine_messages_in_order(msgs, data):
    ch = challenge()
    stream = bytearray(dialer_bytes(KEY, ch, "n2", "n1", msgs))
    how = data.draw(st.sampled_from(["flip", "insert", "delete", "duplicate"]))
    at = data.draw(st.integers(0, len(stream) - 1))
    if how == "flip":
        stream[at] ^= data.draw(st.integers(1, 255))
    elif how == "insert":
        stream[at:at] = data.draw(st.binary(min_size=1, max_size=40))
    elif how == "delete":
        del stream[at:at + data.draw(st.integers(1, 40))]
    else:  # a stretch of the stream sent again: a replay, or garbage if it is not whole frames
        n = data.draw(st.integers(1, 200))
        stream[at:at] = stream[at:at + n]
    link = receiver(ch)
    got = link.feed(bytes(stream))
    it = iter(msgs)
    assert all(any(g == m for m in it) for g in got), "a delivered message was not sent, or came out of order"
    assert link.buffered() <= max(len(stream), 2 + HELLO_MAX)


# ---- on the wire ---------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_until(predicate, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def dial(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    greeting = await reader.readexactly(len(MAGIC) + CHALLENGE_BYTES)
    assert greeting.startswith(MAGIC)
    return reader, writer, greeting[len(MAGIC):]


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), 5) == b""
    except ConnectionError:
        return True


def test_two_transports_exchange_messages_and_strangers_are_hung_up_on():
    async def scenario():
        peers = {"n1": ("127.0.0.1", free_port()), "n2": ("127.0.0.1", free_port())}
        got1, got2 = [], []
        t1 = PeerTransport("n1", peers, KEY, got1.append)
        t2 = PeerTransport("n2", peers, KEY, got2.append)
        await t1.start()
        await t2.start()
        try:
            await wait_until(lambda: t1._links["n2"].connected and t2._links["n1"].connected)
            t1.send({"type": "append", "src": "n1", "dst": "n2", "term": 1})
            t2.send({"type": "append_resp", "src": "n2", "dst": "n1", "term": 1})
            await wait_until(lambda: got1 and got2)
            assert got2 == [{"type": "append", "src": "n1", "dst": "n2", "term": 1}]

            # A stranger without the key, then one who sends the old format, straight to n1's peer port.
            reader, writer, ch = await dial(peers["n1"][1])
            writer.write(dialer_bytes(b"wrong-key", ch, "n2", "n1", [APPEND]))
            assert await closed_by_peer(reader)
            reader, writer, _ = await dial(peers["n1"][1])
            writer.write(struct.pack(">I", 40) + b"\0" * 40)
            assert await closed_by_peer(reader)
            await wait_until(lambda: t1.rejected["bad_hello"] == 2)
            assert len(got1) == 1  # only n2's genuine message got through
        finally:
            await t1.close()
            await t2.close()

    asyncio.run(scenario())


def test_a_frame_replayed_on_the_wire_is_dropped_and_counted():
    async def scenario():
        peers = {"n1": ("127.0.0.1", free_port()), "n2": ("127.0.0.1", free_port())}
        got = []
        t1 = PeerTransport("n1", peers, KEY, got.append)
        await t1.start()
        try:
            # n2 (a keyholder: this test) says hello and sends one heartbeat, then the same frame 200 times.
            reader, writer, ch = await dial(peers["n1"][1])
            w = framer_for(ch)
            heartbeat = w.frame(encoded(APPEND))
            writer.write(encode_hello(KEY, ch, "n2", "n1") + heartbeat)
            await wait_until(lambda: len(got) == 1)
            writer.write(heartbeat * 200)
            await wait_until(lambda: t1.rejected["replay"] == 200)
            writer.write(w.frame(encoded({**APPEND, "seq": 2})))  # the link still works
            await wait_until(lambda: len(got) == 2)
            # The whole captured exchange (hello and heartbeat) on a new connection: refused at the hello.
            captured = encode_hello(KEY, ch, "n2", "n1") + heartbeat
            reader2, writer2, _ = await dial(peers["n1"][1])
            writer2.write(captured)
            assert await closed_by_peer(reader2)
            assert t1.rejected["bad_hello"] == 1 and len(got) == 2
            writer.close()
        finally:
            await t1.close()

    asyncio.run(scenario())


def test_strangers_sending_huge_lengths_or_nothing_hold_almost_nothing(monkeypatch):
    monkeypatch.setattr(transport, "HANDSHAKE_TIMEOUT_S", 0.3)

    async def scenario():
        peers = {"n1": ("127.0.0.1", free_port()), "n2": ("127.0.0.1", free_port())}
        t1 = PeerTransport("n1", peers, KEY, lambda m: None)
        await t1.start()
        try:
            conns = [await dial(peers["n1"][1]) for _ in range(20)]
            for i, (_, writer, _) in enumerate(conns):
                # half send the largest hello length there is, half a plausible one and then dribble
                writer.write(struct.pack(">H", 0xFFFF) + b"x" * 60_000 if i % 2 else struct.pack(">H", HELLO_MAX))
            await asyncio.sleep(0.1)
            held = sum(c.link.buffered() for c in t1._inbound)
            # The first half are gone, 60 KB each unread; the others hold the 2 bytes of their length.
            assert held == 10 * 2 and len(t1._inbound) == 10
            # silent ones are hung up on after the handshake timeout
            for reader, _, _ in conns:
                assert await closed_by_peer(reader)
            assert t1.rejected["bad_hello"] == 10 and t1.rejected["handshake_timeout"] == 10
            await wait_until(lambda: not t1._inbound)
        finally:
            await t1.close()

    asyncio.run(scenario())


def test_sending_to_a_dead_peer_drops_without_blocking():
    async def scenario():
        peers = {"n1": ("127.0.0.1", free_port()), "n2": ("127.0.0.1", free_port())}
        t1 = PeerTransport("n1", peers, KEY, lambda m: None)
        await t1.start()
        try:
            for _ in range(1000):
                t1.send({"type": "append", "src": "n1", "dst": "n2", "term": 1})
            assert t1.counters["peer_messages_dropped"] == 1000
        finally:
            await t1.close()

    asyncio.run(scenario())


def test_a_peer_that_comes_back_is_reconnected_at_once_not_after_the_backoff(monkeypatch):
    # Backoffs far longer than the test: only the hello of the returning peer can reconnect in time.
    monkeypatch.setattr(transport, "BACKOFF_MIN_S", 60.0)

    async def scenario():
        peers = {"n1": ("127.0.0.1", free_port()), "n2": ("127.0.0.1", free_port())}
        got1, got2 = [], []
        t1 = PeerTransport("n1", peers, KEY, got1.append)
        await t1.start()
        t2 = PeerTransport("n2", peers, KEY, got2.append)
        try:
            await asyncio.sleep(0.2)  # n1's first attempt failed: it now backs off for a minute
            assert not t1._links["n2"].connected
            await t2.start()
            await wait_until(lambda: t1._links["n2"].connected)
            t1.send({"type": "append", "src": "n1", "dst": "n2", "term": 1})
            await wait_until(lambda: got2)
            assert got1 == []  # the hello is the transport's: it never reaches the node
        finally:
            await t1.close()
            await t2.close()

    asyncio.run(scenario())


def test_a_snapshot_sized_message_arrives_whole_and_heartbeats_are_not_stuck_behind_it():
    async def scenario():
        peers = {"n1": ("127.0.0.1", free_port()), "n2": ("127.0.0.1", free_port())}
        got = []
        t1 = PeerTransport("n1", peers, KEY, lambda m: None)
        t2 = PeerTransport("n2", peers, KEY, got.append)
        await t1.start()
        await t2.start()
        try:
            await wait_until(lambda: t1._links["n2"].connected)
            big = {"type": "snapshot", "src": "n1", "dst": "n2", "term": 1,
                   "snapshot": {"state": {"k": "x" * (12 * CHUNK_BYTES)}}}
            assert t1.send(big)
            link = t1._links["n2"]
            # The first chunk is on its way. Polled at every turn of the loop, not on a timer: the writer
            # yields between chunks, and on a quiet machine all twelve go out within one timer's tick.
            for _ in range(100_000):
                if link._big_at > 0:
                    break
                await asyncio.sleep(0)
            assert link._big_at > 0
            assert t1.send({"type": "append", "src": "n1", "dst": "n2", "term": 1})
            await wait_until(lambda: len(got) == 2)
            assert [m["type"] for m in got] == ["append", "snapshot"] and got[1] == big
        finally:
            await t1.close()
            await t2.close()

    asyncio.run(scenario())


def _outgoing_bytes(out) -> bytes:
    data = b""
    while True:
        chunk, last = out.next_chunk()
        data += chunk
        if last:
            return data


def test_an_append_of_many_small_entries_is_encoded_at_once_and_a_long_one_a_chunk_at_a_time():
    from targets.raftkv.transport import CHUNK_BYTES, _Outgoing, encode_append

    def append(n, value):
        return {"type": "append", "src": "n1", "dst": "n2", "term": 3, "prev_index": 7, "prev_term": 2,
                "entries": [{"index": 8 + i, "term": 3, "kind": "op",
                             "data": {"op": {"f": "put", "key": f"k{i}", "value": value, "request_id": None}}}
                            for i in range(n)], "commit": 7, "seq": 11}

    small = append(32, 12345)
    out = encode_append(small)
    assert isinstance(out, bytes) and json.loads(out) == small
    big = append(40, "x" * 10_000)  # 400 KB: more than a chunk
    out = encode_append(big)
    assert isinstance(out, _Outgoing)
    data = _outgoing_bytes(out)
    assert len(data) > CHUNK_BYTES and json.loads(data) == big


def test_a_peer_that_closes_its_links_is_reported_once_and_a_stranger_never():
    async def scenario():
        peers = {"n1": ("127.0.0.1", free_port()), "n2": ("127.0.0.1", free_port())}
        lost = []
        t1 = PeerTransport("n1", peers, KEY, lambda m: None, link_lost=lost.append)
        t2 = PeerTransport("n2", peers, KEY, lambda m: None)
        await t1.start()
        await t2.start()
        try:
            await wait_until(lambda: t1._links["n2"].connected and t2._links["n1"].connected)
            reader, writer, ch = await dial(peers["n1"][1])  # a stranger that hangs up at once
            writer.close()
            await asyncio.sleep(0.05)
            assert lost == []
            await t2.close()  # as the kernel does for a process killed with SIGKILL
            await wait_until(lambda: lost)
            await asyncio.sleep(0.05)
            assert lost == ["n2"]
        finally:
            await t1.close()

    asyncio.run(scenario())


def test_on_uvloop_a_write_to_a_link_the_peer_reset_is_a_lost_link_not_an_exception():
    """uvloop's transport raises RuntimeError when written after it closed (asyncio's drops the bytes);
    on the driver's path of every send that stopped a node in the nightly suite."""
    import uvloop

    async def scenario():
        peers = {"n1": ("127.0.0.1", free_port()), "n2": ("127.0.0.1", free_port())}
        t1 = PeerTransport("n1", peers, KEY, lambda m: None)
        t2 = PeerTransport("n2", peers, KEY, lambda m: None)
        await t1.start()
        await t2.start()
        try:
            await wait_until(lambda: t1._links["n2"].connected and t2._links["n1"].connected)
            link = t1._links["n2"]
            writer = link.writer
            writer.transport.abort()  # closed under the link, before its watcher has run
            assert link.enqueue(b'{"type":"append"}') is False and link.broken
            assert t1.send({"type": "append", "src": "n1", "dst": "n2", "term": 1}) is False
            await wait_until(lambda: link.connected and link.writer is not writer)  # and it reconnects
            assert t1.send({"type": "append", "src": "n1", "dst": "n2", "term": 1}) is True
        finally:
            await t1.close()
            await t2.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())
