"""Peer frames without the cluster key, or from a stranger, are dropped and counted, never delivered."""

import asyncio
import json
import socket
import struct

import pytest

from targets.raftkv.transport import (
    MAC_BYTES,
    FrameCheck,
    KeyFileError,
    PeerTransport,
    encode_frame,
    mac_of,
    read_cluster_key,
)

KEY = b"cluster-secret"
VOTE = {"type": "request_vote", "src": "n2", "dst": "n1", "term": 10**9}


def body_of(frame: bytes) -> bytes:
    return frame[4:]


def checker():
    return FrameCheck(KEY, "n1", {"n1", "n2", "n3"})


def test_a_frame_signed_with_the_cluster_key_is_accepted():
    assert checker().accept(body_of(encode_frame(KEY, "n2", VOTE))) == VOTE


def test_a_frame_signed_with_another_key_is_rejected_as_bad_mac():
    c = checker()
    assert c.accept(body_of(encode_frame(b"guess", "n2", VOTE))) is None
    assert c.rejected["bad_mac"] == 1


def test_a_frame_without_a_mac_is_rejected_as_bad_mac():
    c = checker()
    payload = json.dumps({"from": "n2", "msg": VOTE}).encode()
    assert c.accept(payload) is None  # MAC bytes missing: the payload is taken for one and fails
    assert c.accept(b"short") is None
    assert c.rejected["bad_mac"] == 2


def test_a_tampered_payload_is_rejected():
    c = checker()
    body = bytearray(body_of(encode_frame(KEY, "n2", VOTE)))
    body[MAC_BYTES + 5] ^= 1
    assert c.accept(bytes(body)) is None
    assert c.rejected["bad_mac"] == 1


def test_a_frame_from_an_unknown_node_or_speaking_for_another_is_rejected():
    c = checker()
    assert c.accept(body_of(encode_frame(KEY, "n9", VOTE))) is None
    assert c.accept(body_of(encode_frame(KEY, "n3", VOTE))) is None  # from n3, src n2
    assert c.accept(body_of(encode_frame(KEY, "n1", {**VOTE, "src": "n1"}))) is None  # from self
    assert c.rejected["unknown_peer"] == 3


def test_a_correctly_signed_non_json_payload_is_malformed():
    c = checker()
    payload = b"not json"
    assert c.accept(mac_of(KEY, payload) + payload) is None
    assert c.rejected["malformed"] == 1


def test_the_key_file_must_be_readable_and_non_empty(tmp_path):
    (tmp_path / "key").write_text("  s3cret\n")
    assert read_cluster_key(str(tmp_path / "key")) == b"s3cret"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(KeyFileError, match="empty"):
        read_cluster_key(str(tmp_path / "empty"))
    with pytest.raises(KeyFileError, match="cannot read"):
        read_cluster_key(str(tmp_path / "missing"))


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


def test_two_transports_exchange_messages_and_drop_forged_frames_on_the_wire():
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
            t2.send({"type": "append_reply", "src": "n2", "dst": "n1", "term": 1})
            await wait_until(lambda: got1 and got2)
            assert got2 == [{"type": "append", "src": "n1", "dst": "n2", "term": 1}]

            # An attacker without the key connects straight to n1's peer port.
            reader, writer = await asyncio.open_connection(*peers["n1"])
            forged = encode_frame(b"wrong-key", "n2", VOTE)
            unsigned = json.dumps({"from": "n2", "msg": VOTE}).encode()
            writer.write(forged + struct.pack(">I", len(unsigned)) + unsigned)
            writer.write(encode_frame(KEY, "n1", {"type": "x", "dst": "n1"}))  # stolen-key self-claim
            await writer.drain()
            await wait_until(lambda: t1.rejected["bad_mac"] == 2 and t1.rejected["unknown_peer"] == 1)
            assert len(got1) == 1  # only n2's genuine message got through
            writer.close()
        finally:
            await t1.close()
            await t2.close()

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
    import targets.raftkv.transport as transport

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


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_frame_body_is_accepted_only_with_the_key(body):
    c = checker()
    assert c.accept(body) is None  # random bytes never carry a valid MAC
    assert sum(c.rejected.values()) == 1


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=3),
                 st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)))
def test_signed_but_strange_payloads_are_dropped_not_crashing(msg):
    c = checker()
    payload = json.dumps({"from": "n2", "msg": msg}).encode()
    result = c.accept(mac_of(KEY, payload) + payload)
    assert result is None or (isinstance(result, dict) and result.get("src", "n2") == "n2")
