"""The raftkv state machine: puts, cas, reads, and at-most-once writes by request id."""

from targets.raftkv.kvstate import KVState, Outcome


def test_a_read_of_a_missing_key_is_not_found():
    assert KVState().read("k") == Outcome(404, {"error": "not-found"})


def test_a_put_is_read_back():
    kv = KVState()
    assert kv.apply({"f": "put", "key": "k", "value": 3}) == Outcome(200, {})
    assert kv.read("k") == Outcome(200, {"value": 3})


def test_cas_swaps_only_when_the_current_value_matches():
    kv = KVState()
    kv.apply({"f": "put", "key": "k", "value": 1})
    assert kv.apply({"f": "cas", "key": "k", "from": 2, "to": 3}) == Outcome(
        409, {"error": "cas-mismatch", "value": 1}
    )
    assert kv.apply({"f": "cas", "key": "k", "from": 1, "to": 3}) == Outcome(200, {})
    assert kv.read("k").body == {"value": 3}


def test_cas_on_a_missing_key_is_a_mismatch_with_value_none():
    assert KVState().apply({"f": "cas", "key": "k", "from": None, "to": 1}) == Outcome(
        409, {"error": "cas-mismatch", "value": None}
    )


def test_a_retried_write_with_the_same_request_id_is_applied_at_most_once():
    kv = KVState()
    kv.apply({"f": "put", "key": "k", "value": 1, "request_id": "r1"})
    kv.apply({"f": "put", "key": "k", "value": 2, "request_id": "r2"})
    # r1 is retried after r2 landed: it must not overwrite r2's value again.
    assert kv.apply({"f": "put", "key": "k", "value": 1, "request_id": "r1"}) == Outcome(200, {})
    assert kv.read("k").body == {"value": 2}


def test_a_retried_cas_returns_its_first_outcome():
    kv = KVState()
    kv.apply({"f": "put", "key": "k", "value": 1})
    cas = {"f": "cas", "key": "k", "from": 1, "to": 2, "request_id": "c"}
    assert kv.apply(cas).status == 200
    assert kv.apply(cas).status == 200  # not a 409 against its own result


def test_the_dedupe_table_survives_a_snapshot_round_trip():
    kv = KVState()
    kv.apply({"f": "put", "key": "k", "value": 1, "request_id": "r1"})
    kv.apply({"f": "put", "key": "k", "value": 2})
    restored = KVState.from_json(kv.to_json())
    restored.apply({"f": "put", "key": "k", "value": 1, "request_id": "r1"})
    assert restored.read("k").body == {"value": 2}


def test_the_dedupe_table_forgets_the_oldest_request_ids_beyond_its_capacity():
    from targets.raftkv import kvstate

    kv = KVState()
    for i in range(kvstate.DEDUPE_CAPACITY + 5):
        kv.apply({"f": "put", "key": "k", "value": i, "request_id": f"r{i}"})
    assert len(kv.dedupe) == kvstate.DEDUPE_CAPACITY
    assert "r0" not in kv.dedupe and f"r{kvstate.DEDUPE_CAPACITY + 4}" in kv.dedupe
