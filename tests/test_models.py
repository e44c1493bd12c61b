"""Each model does what DESIGN.md and the peer grammar say, one operation at a time."""

from __future__ import annotations

import pytest

from checkers.models import MODELS, get_model
from history.operation import END_OF_TIME, Operation


def op(f, value=None, output=None, status="ok", process=0, key=None, call=0, ret=1):
    if status == "info":
        ret = END_OF_TIME
    return Operation(0, process, f, value, output, call, ret, status, key)


def test_the_registry_has_the_eight_models_the_cli_offers():
    assert set(MODELS) == {"register", "cas-register", "multi-register", "kv", "set", "mutex", "etcd", "string-kv"}
    for name in MODELS:
        assert get_model(name).name == name


def test_an_unknown_model_name_is_a_one_line_value_error_naming_the_choices():
    with pytest.raises(ValueError) as err:
        get_model("queue")
    message = str(err.value)
    assert "\n" not in message and "queue" in message and "cas-register" in message


def test_register_reads_what_was_written_and_starts_at_initial():
    m = get_model("register")
    assert m.init() is None
    assert m.step(None, op("read", output=None)) == (None,)
    assert m.step(None, op("read", output=3)) == ()
    assert m.step(None, op("write", 3)) == (3,)
    assert get_model("register", initial=5).init() == 5


def test_register_refuses_cas():
    with pytest.raises(ValueError):
        get_model("register").step(None, op("cas", [1, 2]))


def test_cas_register_cas_needs_the_from_value():
    m = get_model("cas-register")
    assert m.step(1, op("cas", [1, 2])) == (2,)
    assert m.step(3, op("cas", [1, 2])) == ()
    assert m.needs(op("cas", [1, 2])) == "1"
    assert m.needs(op("read", output=None)) == "nil"


def test_lists_read_from_json_are_values_like_tuples():
    m = get_model("cas-register")
    (state,) = m.step(None, op("write", [1, 2]))
    assert m.step(state, op("read", output=[1, 2])) == (state,)


def test_a_read_with_unknown_output_constrains_nothing():
    m = get_model("cas-register")
    assert m.step(7, op("read", status="info")) == (7,)


def test_kv_partitions_by_key_and_is_a_cas_register_per_key():
    m = get_model("kv")
    ops = [op("write", 1, key="a"), op("write", 2, key="b"), op("read", output=1, key="a")]
    parts = m.partition(ops)
    assert set(parts) == {"a", "b"}
    assert len(parts["a"]) == 2
    assert m.step(1, op("cas", [1, 2], key="a")) == (2,)


def test_set_adds_and_reads_everything():
    m = get_model("set")
    s0 = m.init()
    (s1,) = m.step(s0, op("add", 1))
    (s2,) = m.step(s1, op("add", 2))
    assert m.step(s2, op("read", output=[2, 1])) == (s2,)
    assert m.step(s2, op("read", output=[1])) == ()
    assert m.describe_state(s2) == "{1, 2}"


def test_set_read_of_a_non_list_is_a_clear_error():
    with pytest.raises(ValueError, match="list"):
        get_model("set").step(frozenset(), op("read", output=3))


def test_mutex_is_knossos_s_a_held_flag_that_anyone_may_release():
    # knossos.model/Mutex: acquire needs free, release needs held; it keeps no owner.
    m = get_model("mutex")
    assert m.describe_state(m.init()) == "free"
    (held,) = m.step(m.init(), op("acquire", process=1))
    assert m.describe_state(held) == "held"
    assert m.step(held, op("acquire", process=2)) == ()
    assert m.step(held, op("release", process=2)) == (False,)
    assert m.step(m.init(), op("release", process=1)) == ()


def test_multi_register_applies_a_txn_in_order_and_a_nil_read_is_always_legal():
    m = get_model("multi-register", {"x": 0, "y": 0})
    txn = [["write", "x", 1], ["read", "x", 1], ["read", "y", 0]]
    (s,) = m.step(m.init(), op("txn", txn, output=txn))
    assert dict(s) == {"x": 1, "y": 0}
    assert m.step(s, op("txn", [["read", "x", None]], output=[["read", "x", 0]])) == ()
    assert m.step(s, op("txn", [["read", "x", None]], output=[["read", "x", None]])) == (s,)
    # An info txn never returned: its invoke's reads (nil) constrain nothing, its writes may apply.
    (after,) = m.step(s, op("txn", [["write", "y", 5], ["read", "x", None]], status="info"))
    assert dict(after) == {"x": 1, "y": 5}
    with pytest.raises(ValueError):
        m.step(s, op("txn", [["append", "x", 1]], output=[["append", "x", 1]]))


def test_an_unknown_read_matches_any_state_in_every_model_with_reads():
    from history.operation import UNKNOWN

    # Each with an output that the state does not match, so UNKNOWN is what makes it legal.
    for name, state, f, other in [("register", 3, "read", None), ("cas-register", 3, "read", None),
                                  ("kv", 3, "read", None), ("set", frozenset({1}), "read", []),
                                  ("etcd", 3, "read", None), ("string-kv", "ab", "get", "zz")]:
        m = get_model(name)
        assert m.step(state, op(f, output=UNKNOWN)) == (state,), name
        assert m.step(state, op(f, output=other)) == (), name


def test_etcd_failed_cas_means_the_value_did_not_match():
    m = get_model("etcd")
    failed = op("cas", [1, 2], status="fail")
    assert m.relevant(failed)
    assert m.step(1, failed) == ()
    assert m.step(3, failed) == (3,)


def test_etcd_timed_out_read_accepts_any_state_and_unknown_cas_does_what_the_state_allows():
    m = get_model("etcd")
    assert m.step(4, op("read", status="fail")) == (4,)
    unknown = op("cas", [1, 2], status="info")
    assert m.step(1, unknown) == (2,)
    assert m.step(3, unknown) == (3,)


def test_fail_ops_take_no_part_except_in_the_etcd_grammar():
    failed = op("write", 1, status="fail")
    for name in ("register", "cas-register", "kv", "set", "mutex", "string-kv"):
        assert not get_model(name).relevant(failed)
    assert get_model("etcd").relevant(failed)


def test_string_kv_get_put_append_start_from_empty():
    m = get_model("string-kv")
    assert m.init() == ""
    (s,) = m.step("", op("append", "x 1 0 y", key="0"))
    assert s == "x 1 0 y"
    assert m.step(s, op("get", output="x 1 0 y", key="0")) == (s,)
    assert m.step(s, op("put", "z", key="0")) == ("z",)
    assert set(m.partition([op("get", key="0", output=""), op("get", key="1", output="")])) == {
        "0",
        "1",
    }


def test_growth_models_say_when_a_read_can_no_longer_hold():
    kv = get_model("string-kv")
    holds = kv.reachable(op("get", output="ab"))
    assert holds("a") and holds("ab") and not holds("b")
    assert kv.resets(op("put", "x")) and not kv.resets(op("append", "x"))
    assert kv.reset_allows(op("put", "a"), op("get", output="ab"))
    assert not kv.reset_allows(op("put", "b"), op("get", output="ab"))
    s = get_model("set")
    assert s.reachable(op("read", output=[1, 2]))(frozenset({1}))
    assert not s.reachable(op("read", output=[1, 2]))(frozenset({3}))
    # A register has no growth: a read holds only if the value is already what it read.
    reg = get_model("cas-register")
    assert reg.reachable(op("read", output=1))(1) and not reg.reachable(op("read", output=1))(2)
    assert reg.reset_key(op("cas", [0, 1])) == (1,) and reg.read_key(op("read", output=1)) == (1,)
    assert get_model("mutex").reachable(op("acquire")) is None


def test_every_model_describes_ops_and_states_in_words():
    for name in MODELS:
        m = get_model(name)
        assert isinstance(m.describe_state(m.init()), str)
        f = {"set": "add", "mutex": "acquire", "string-kv": "put"}.get(name, "write")
        assert f in m.describe_op(op(f, 1 if name != "string-kv" else "v", process=3))


def test_values_of_the_wrong_shape_are_value_errors_not_type_errors():
    m = get_model("string-kv")
    with pytest.raises(ValueError):
        m.step("", op("append", 5))
    with pytest.raises(ValueError):
        m.step("", op("get", output=[1]))
    with pytest.raises(ValueError):
        get_model("cas-register").step(None, op("cas", 5))


def test_a_history_of_the_wrong_shape_gives_value_error_from_check():
    from checkers.linearizability import check

    with pytest.raises(ValueError):
        check([op("get", output=[1], key="k")], get_model("string-kv"))
    with pytest.raises(ValueError):
        check([op("read", output=3)], get_model("set"))
