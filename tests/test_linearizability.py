"""The linearizability search: verdicts, info semantics, partitions and budgets, and the evidence it gives."""

from __future__ import annotations

import dataclasses
import json

from checkers.linearizability import check
from checkers.models import get_model
from history.operation import END_OF_TIME, Operation


def history(*rows, key=None):
    """Rows of (process, f, value, output, call, ret[, status]); index = position."""
    ops = []
    for i, row in enumerate(rows):
        process, f, value, output, call, ret, *rest = row
        status = rest[0] if rest else "ok"
        if status == "info":
            ret = END_OF_TIME
        ops.append(Operation(i, process, f, value, output, call, ret, status, key))
    return ops


def test_sequential_write_then_read_is_linearizable():
    ops = history((0, "write", 1, None, 0, 1), (1, "read", None, 1, 2, 3))
    result = check(ops, get_model("register"))
    assert result["valid"] is True
    assert result["checker"] == "linearizability" and result["model"] == "register"
    assert result["failing_key"] is None and result["evidence"] is None
    assert result["operations"] == 2


def test_a_stale_read_after_a_completed_write_is_not_linearizable():
    ops = history((0, "write", 1, None, 0, 1), (1, "read", None, None, 2, 3))
    assert check(ops, get_model("register"))["valid"] is False


def test_a_read_concurrent_with_a_write_may_see_either_value():
    for seen in (None, 1):
        ops = history((0, "write", 1, None, 0, 10), (1, "read", None, seen, 2, 3))
        assert check(ops, get_model("register"))["valid"] is True


def test_an_info_write_may_have_happened_or_not():
    for seen in (None, 1):
        ops = history((0, "write", 1, None, 0, 1, "info"), (1, "read", None, seen, 5, 6))
        assert check(ops, get_model("register"))["valid"] is True


def test_an_info_write_cannot_take_effect_before_it_was_called():
    ops = history((1, "read", None, 1, 0, 1), (0, "write", 1, None, 5, 6, "info"))
    assert check(ops, get_model("register"))["valid"] is False


def test_an_info_op_is_never_treated_as_a_failure():
    # A cas that timed out may still have swapped; a later read of its new value is fine.
    ops = history(
        (0, "write", 1, None, 0, 1),
        (1, "cas", [1, 2], None, 2, 3, "info"),
        (2, "read", None, 2, 10, 11),
    )
    assert check(ops, get_model("cas-register"))["valid"] is True


def test_a_failed_op_certainly_did_not_happen():
    ops = history((0, "write", 1, None, 0, 1, "fail"), (1, "read", None, 1, 2, 3))
    assert check(ops, get_model("register"))["valid"] is False


def test_initial_value_is_where_the_register_starts():
    ops = history((0, "read", None, 7, 0, 1))
    assert check(ops, get_model("register", initial=7))["valid"] is True
    assert check(ops, get_model("register"))["valid"] is False


def test_mutex_two_holders_at_once_is_not_linearizable():
    ops = history((1, "acquire", None, None, 0, 1), (2, "acquire", None, None, 2, 3))
    assert check(ops, get_model("mutex"))["valid"] is False
    ops = history(
        (1, "acquire", None, None, 0, 1),
        (1, "release", None, None, 2, 3),
        (2, "acquire", None, None, 4, 5),
    )
    assert check(ops, get_model("mutex"))["valid"] is True


def test_set_read_missing_an_acknowledged_add_is_not_linearizable():
    ops = history((0, "add", 1, None, 0, 1), (1, "read", None, [], 2, 3))
    assert check(ops, get_model("set"))["valid"] is False


def test_kv_checks_each_key_and_names_the_failing_one():
    ops = history((0, "write", 1, None, 0, 1), (1, "read", None, 1, 2, 3), key="a")
    ops += [
        Operation(10, 0, "write", 5, None, 4, 5, "ok", "b"),
        Operation(11, 1, "read", None, 6, 6, 7, "ok", "b"),
    ]
    result = check(ops, get_model("kv"))
    assert result["valid"] is False
    assert result["failing_key"] == "b"
    assert "b" in result["keys"]["settled"]


def _hard_key(key, writers=12):
    """Many overlapping writes, then reads of 0 and then 1, which no order allows; many orders to rule out."""
    ops = [Operation(i, i, "write", i, None, 0, 100, "ok", key) for i in range(writers)]
    ops.append(Operation(writers, writers, "read", None, 0, 200, 201, "ok", key))
    ops.append(Operation(writers + 1, writers, "read", None, 1, 202, 203, "ok", key))
    return ops


def test_a_partition_that_runs_out_of_time_is_unknown_for_its_key_alone():
    easy = [Operation(100, 50, "write", 1, None, 0, 1, "ok", "easy")]
    result = check(_hard_key("hard") + easy, get_model("kv"), time_limit=0.0)
    assert result["valid"] == "unknown"
    assert result["keys"]["unknown"] == ["hard"]
    assert result["keys"]["settled"] == ["easy"]


def test_an_easy_illegal_key_settles_the_verdict_before_a_hard_one_is_finished():
    bad = history((0, "write", 1, None, 0, 1), (1, "read", None, 2, 2, 3), key="bad")
    bad = [dataclasses.replace(op, index=op.index + 500, process=op.process + 500) for op in bad]
    result = check(_hard_key("hard", writers=14) + bad, get_model("kv"))
    assert result["valid"] is False
    assert result["failing_key"] == "bad"
    assert result["keys"]["unchecked"] == ["hard"]


def test_evidence_shows_the_prefix_the_state_and_the_op_that_cannot_go_next():
    ops = history(
        (0, "write", 1, None, 0, 1),
        (1, "write", 2, None, 2, 3),
        (2, "read", None, 1, 4, 5),
        (3, "read", None, 2, 6, 7),
    )
    result = check(ops, get_model("register"))
    assert result["valid"] is False
    ev = result["evidence"]
    assert ev["key"] is None
    assert ev["linearized_prefix"] == [0, 1]
    assert ev["state_after_prefix"] == "2"
    assert [b["op"] for b in ev["blocked"]] == [2]
    assert ev["blocked"][0]["needs"] == "1"
    assert "read" in ev["blocked"][0]["description"]
    assert [o["index"] for o in ev["operations"]] == [0, 1, 2]
    json.dumps(result, allow_nan=False)


def test_evidence_is_plain_json_even_with_info_ops_and_tuple_keys():
    ops = [
        Operation(0, 0, "write", 1, None, 0, END_OF_TIME, "info", ("t", 1)),
        Operation(1, 1, "read", None, 5, 2, 3, "ok", ("t", 1)),
    ]
    result = check(ops, get_model("kv"))
    assert result["valid"] is False
    assert result["failing_key"] == ["t", 1]
    text = json.dumps(result, allow_nan=False)
    assert '"ret": null' in text


def test_an_empty_history_is_linearizable():
    assert check([], get_model("cas-register"))["valid"] is True


def test_a_long_single_register_history_is_checked_quickly():
    ops = []
    for i in range(3000):
        ops.append(Operation(2 * i, 0, "write", i, None, 4 * i, 4 * i + 1, "ok"))
        ops.append(Operation(2 * i + 1, 1, "read", None, i, 4 * i + 2, 4 * i + 3, "ok"))
    result = check(ops, get_model("register"), time_limit=30)
    assert result["valid"] is True
    assert result["elapsed_s"] < 10


def test_with_the_memo_capped_the_verdict_is_the_same(monkeypatch):
    import checkers.linearizability as lin

    ops = _hard_key("k", writers=10)
    expected = check(ops, get_model("kv"))
    monkeypatch.setattr(lin, "_MEMO_CAP", 100)
    capped = check(ops, get_model("kv"))
    assert expected["valid"] is False and capped["valid"] is False
    assert capped["configurations"] > expected["configurations"]  # the cap did bite


def test_the_sentence_names_the_stale_read_not_an_unknown_cas_beside_it():
    """Shaped on a ZooKeeper run (plain reads, partitions): the search stopped with two cas of
    unknown outcome and a completed read blocked; only the read says what went wrong."""
    from checkers.linearizability_checker import LinearizabilityChecker, sentence

    def op(index, process, f, value, output, status, call, ret):
        return {"index": index, "process": process, "f": f, "key": "k10", "value": value, "output": output,
                "status": status, "call": call, "ret": ret, "description": f"p{process} {f} 'k10'"}

    ev = {"key": "k10", "state_after_prefix": "68", "linearized_prefix": [4700],
          "operations": [op(4700, 3, "write", 68, 68, "ok", 1_000_000_000, 1_100_000_000),
                         op(4779, 29, "cas", [16, 17], None, "info", 1_200_000_000, None),
                         op(6000, 54, "read", None, 63, "ok", 1_300_000_000, 1_400_000_000)],
          "blocked": [{"op": 4779, "description": "p29 cas 'k10' [16, 17] [info]", "needs": "16",
                       "reason": "illegal in the state after the prefix"},
                      {"op": 6000, "description": "p54 read 'k10' -> 63", "needs": "63",
                       "reason": "can no longer hold: the state only grows from here"}]}
    assert sentence(ev) == ("key k10: a read returned 63 after a write of 68 had completed "
                            "(p3, done at 1.100s, before the read began at 1.300s)")
    (anomaly,) = LinearizabilityChecker.anomalies({"valid": False, "evidence": ev})
    assert anomaly.evidence["focus_operations"] == [6000, 4700]
    # with nothing but unknown ops blocked, the first one is still named
    only_info = {**ev, "blocked": ev["blocked"][:1]}
    assert "p29 cas 'k10' [16, 17] [info] cannot be placed" in sentence(only_info)
