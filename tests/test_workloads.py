"""Workload generators: register keys retire after a number of ops with unique values; set adds are unique."""

from __future__ import annotations

from collections import Counter

from workloads.base import make_workload


def test_register_ops_are_read_write_cas_and_the_same_seed_repeats_them():
    a = make_workload("register", 5, keys=3, ops_per_key=50)
    b = make_workload("register", 5, keys=3, ops_per_key=50)
    ops_a = [a.next_op() for _ in range(500)]
    assert ops_a == [b.next_op() for _ in range(500)]
    assert {o["f"] for o in ops_a} == {"read", "write", "cas"}


def test_a_register_key_is_retired_after_ops_per_key_operations():
    w = make_workload("register", 1, keys=4, ops_per_key=25)
    per_key = Counter(w.next_op()["key"] for _ in range(1000))
    assert all(n <= 25 for n in per_key.values())
    assert len(per_key) >= 1000 // 25
    # Final reads cover every key ever used.
    assert {o["key"] for o in w.final_ops()} == set(per_key)
    assert all(o["f"] == "read" for o in w.final_ops())


def test_register_values_written_to_a_key_are_unique():
    w = make_workload("register", 2, keys=2, ops_per_key=1000)
    written: dict[str, list] = {}
    for _ in range(2000):
        op = w.next_op()
        if op["f"] == "write":
            written.setdefault(op["key"], []).append(op["value"])
        elif op["f"] == "cas":
            written.setdefault(op["key"], []).append(op["value"][1])
    for values in written.values():
        assert len(values) == len(set(values))


def test_cas_goes_from_the_last_value_an_ok_op_saw():
    w = make_workload("register", 3, keys=1, ops_per_key=10_000)
    w.completed({"f": "write", "key": "k0", "value": 1}, {"type": "ok", "value": 1})
    w.next_op()
    w.completed({"f": "read", "key": "k0", "value": None}, {"type": "ok", "value": 77})
    cas = [o for o in (w.next_op() for _ in range(300)) if o["f"] == "cas"]
    assert cas and Counter(o["value"][0] for o in cas).most_common(1)[0][0] == 77


def test_set_adds_are_unique_and_the_final_op_reads_the_whole_set():
    w = make_workload("set", 1)
    adds = [w.next_op() for _ in range(1000)]
    assert all(o["f"] == "add" for o in adds)
    assert len({o["value"] for o in adds}) == 1000
    assert w.final_ops() == [{"f": "read", "key": "set", "value": None}]


def test_a_workload_takes_the_spec_options_it_names_and_ignores_the_rest():
    from workloads.base import make_workload

    register = make_workload("register", 1, keys=3, ops_per_key=10, unused=True)
    assert register.model == "kv"
    assert make_workload("set", 1, keys=3, ops_per_key=10).model == "set"
