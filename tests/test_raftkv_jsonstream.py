"""The piecewise JSON codec: byte-identical to json.dumps, equal to json.loads, and bounded per step."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from targets.raftkv.jsonstream import (
    STEP_BYTES,
    STEP_PIECES,
    Decoder,
    batches,
    decode,
    encode_pieces,
)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
# Lists past LONG_LIST (8) are walked element by element, shorter ones encoded whole: both kinds.
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=12),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=5)),
                      max_leaves=40)


def dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@settings(max_examples=300, deadline=None)
@given(values, st.integers(0, 5))
def test_pieces_concatenate_to_json_dumps(obj, depth):
    assert b"".join(encode_pieces(obj, depth)) == dumps(obj)


@settings(max_examples=300, deadline=None)
@given(values, st.integers(0, 5), st.integers(1, 40))
def test_decoder_agrees_with_json_loads(obj, depth, window):
    # Tiny windows cut numbers, strings and multi-byte characters at every place.
    for text in (dumps(obj), json.dumps(obj, indent=1, ensure_ascii=False).encode()):
        assert decode(text, depth, window) == json.loads(text)


@pytest.mark.parametrize("bad", [b"", b"{", b'{"a":1,}', b'{"a" 1}', b'{"a":1}x', b'{"a":1 "b":2}', b"{,}",
                                 b'{"a":tru}', b'{"a":12', b'{1:2}', b'{"a":"\xff"}', b"[1,"])
@pytest.mark.parametrize("window", [1, 3, 1024])
def test_decoder_refuses_what_json_loads_refuses(bad, window):
    with pytest.raises(ValueError):
        json.loads(bad)
    with pytest.raises(ValueError):
        decode(bad, window=window)


def big_state(keys: int, value_bytes: int) -> dict:
    return {"index": 7, "term": 2, "members": ["n1", "n2", "n3"],
            "state": {"data": {f"k{i}": "v" * value_bytes for i in range(keys)}, "dedupe": {"r": [200, {}]}}}


def test_encoding_a_big_state_comes_in_bounded_batches():
    """Structural, not timed: no batch holds more than STEP_PIECES pieces, or more than STEP_BYTES unless it
    is one piece (one key's value), so a 30 MB state is never encoded in one go."""
    state = big_state(130, 255 * 1024)
    pieces = list(encode_pieces(state))
    largest_piece = max(map(len, pieces))
    assert largest_piece < 256 * 1024 + 64
    out = list(batches(iter(pieces)))
    assert b"".join(out) == dumps(state)
    assert len(out) >= 130
    assert all(len(b) <= max(STEP_BYTES, largest_piece) for b in out)
    many = list(batches(encode_pieces(big_state(5000, 1))))
    assert len(many) >= 5000 // STEP_PIECES


def test_decoding_a_big_state_takes_bounded_steps():
    state = big_state(130, 255 * 1024)
    d = Decoder(dumps(state))
    steps, held = 0, []
    while not d.step():
        steps += 1
        held.append(len(d.text))
    assert d.value == state
    assert steps > 60
    # The text held at once stays near one window, never the whole 33 MB.
    assert max(held) <= 2 * 1024 * 1024


def test_an_append_of_many_big_entries_is_encoded_an_entry_at_a_time():
    entries = [{"index": i, "term": 1, "kind": "op", "data": {"op": {"f": "put", "key": f"k{i}", "value": "v" * 200_000}}}
               for i in range(40)]
    msg = {"type": "append", "src": "n1", "dst": "n2", "term": 1, "entries": entries, "commit": 3}
    pieces = list(encode_pieces(msg))
    assert b"".join(pieces) == dumps(msg)
    assert max(map(len, pieces)) < 200_100  # one entry's value at most, not the 8 MB message
    assert decode(dumps(msg)) == msg
