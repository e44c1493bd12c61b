"""The search never disagrees with brute force, on histories that are linearizable by construction and on perturbed ones.

Histories come from running a random concurrent schedule against the
sequential model: each op takes effect at one instant between its invoke and
its completion, so the unperturbed history is linearizable. Some ops end
`info` (taking effect or not) or `fail` (not taking effect). Perturbations
then change an output, a value or the timing, and the brute-force oracle
decides what the right verdict is.
"""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import checkers.linearizability as lin
from checkers.bruteforce import linearizable_by_brute_force, linearizable_by_plain_search
from checkers.linearizability import check
from checkers.models import get_model
from history.operation import END_OF_TIME, Operation

VALUES = [0, 1, 2]
KEYS = ["a", "b"]
MODEL_NAMES = ["register", "cas-register", "kv", "set", "mutex", "string-kv", "etcd"]


def _initial(name):
    return {"string-kv": "", "set": frozenset()}.get(name)


def _draw_op(draw, name, process):
    """(f, value, key) for a fresh invocation under model `name`."""
    key = draw(st.sampled_from(KEYS)) if name in ("kv", "string-kv") else None
    v = st.sampled_from(VALUES)
    if name == "register":
        f = draw(st.sampled_from(["read", "write"]))
    elif name in ("cas-register", "kv", "etcd"):
        f = draw(st.sampled_from(["read", "write", "cas"]))
    elif name == "set":
        f = draw(st.sampled_from(["add", "read"]))
    elif name == "mutex":
        f = draw(st.sampled_from(["acquire", "release"]))
    else:
        f = draw(st.sampled_from(["get", "put", "append"]))
    if f == "cas":
        return f, [draw(v), draw(v)], key
    if f in ("write", "add"):
        return f, draw(v), key
    if f in ("put", "append"):
        return f, draw(st.sampled_from(["x", "y"])), key
    return f, None, key


def _apply(name, state, process, f, value, key):
    """Run one op on the sequential model: (took effect?, output, new state)."""
    if key is not None:
        sub = state.get(key, "" if name == "string-kv" else None)
        ok, out, new = _apply(name, sub, process, f, value, None)
        return ok, out, {**state, key: new}
    if f in ("read", "get"):
        return True, (sorted(state) if name == "set" else state), state
    if f in ("write", "put"):
        return True, None, value
    if f == "append":
        return True, None, state + value
    if f == "cas":
        return (state == value[0]), None, (value[1] if state == value[0] else state)
    if f == "add":
        return True, None, state | {value}
    if f == "acquire":
        return (state is None), None, (process if state is None else state)
    if f == "release":
        return (state == process), None, (None if state == process else state)
    raise AssertionError(f)


@st.composite
def histories(draw, name, max_ops=8, max_procs=3, info_weight=1):
    """A history from a random schedule of 2+ processes, linearizable by construction."""
    n_proc = draw(st.integers(2, max_procs))
    budget = draw(st.integers(1, max_ops))
    state = {} if name in ("kv", "string-kv") else _initial(name)
    clock = 0
    next_proc = n_proc
    idle = list(range(n_proc))
    pending: dict = {}  # process -> [index, f, value, key, call, applied, took, output]
    ops: list[Operation] = []
    index = 0
    while budget or pending:
        actions = []
        if budget and idle:
            actions.append("invoke")
        unapplied = [p for p, o in pending.items() if not o[5]]
        applied = [p for p, o in pending.items() if o[5]]
        # Weights: most ops complete; fail and info are the exceptions they are in real runs.
        if unapplied:
            actions += ["apply"] * 4 + ["fail"] + ["info"] * info_weight
        if applied:
            actions += ["complete"] * 4 + ["info"] * info_weight
        action = draw(st.sampled_from(actions))
        if action == "fail" and name == "etcd":
            # In the etcd grammar a failed cas means "found another value", and
            # reads and writes never fail: an op that never ran times out instead.
            action = "info"
        clock += 1
        if action == "invoke":
            process = draw(st.sampled_from(idle))
            idle.remove(process)
            f, value, key = _draw_op(draw, name, process)
            pending[process] = [index, f, value, key, clock, False, False, None]
            index += 1
            budget -= 1
        elif action == "apply":
            process = draw(st.sampled_from(unapplied))
            o = pending[process]
            took, out, state = _apply(name, state, process, o[1], o[2], o[3])
            o[5], o[6], o[7] = True, took, out
        elif action == "fail":
            process = draw(st.sampled_from(unapplied))
            o = pending.pop(process)
            ops.append(Operation(o[0], process, o[1], o[2], None, o[4], clock, "fail", o[3]))
            idle.append(process)
        elif action == "complete":
            process = draw(st.sampled_from(applied))
            o = pending.pop(process)
            # A cas or acquire that found the wrong state did not take effect: a definite fail.
            status = "ok" if o[6] else "fail"
            ops.append(Operation(o[0], process, o[1], o[2], o[7], o[4], clock, status, o[3]))
            idle.append(process)
        else:  # info: the op may or may not have taken effect, and we never learn which
            process = draw(st.sampled_from(unapplied + applied))
            o = pending.pop(process)
            ops.append(Operation(o[0], process, o[1], o[2], None, o[4], END_OF_TIME, "info", o[3]))
            # After info the worker carries on under a new process id.
            idle.append(next_proc)
            next_proc += 1
    return sorted(ops, key=lambda op: op.index)


@st.composite
def perturbed(draw, history, name):
    ops = list(history)
    for _ in range(draw(st.integers(1, 2))):
        _perturb_one(draw, ops, name)
    return ops


def _perturb_one(draw, ops, name):
    if not ops:
        return
    reads = [i for i, op in enumerate(ops) if op.f in ("read", "get") and op.status == "ok"]
    if reads and draw(st.booleans()):
        i = draw(st.sampled_from(reads))
    else:
        i = draw(st.integers(0, len(ops) - 1))
    op = ops[i]
    kind = draw(st.sampled_from(["output", "value", "earlier", "later", "status"]))
    if kind == "output" and op.f in ("read", "get"):
        if name == "set":
            choices = [[], [0], [0, 1], [1, 2], [0, 1, 2]]
        elif op.f == "get":
            choices = ["", "x", "y", "xy", "yx", "xx"]
        else:
            choices = [None, *VALUES]
        op = dataclasses.replace(op, output=draw(st.sampled_from(choices)))
    elif kind == "value" and op.f in ("write", "add"):
        op = dataclasses.replace(op, value=draw(st.sampled_from(VALUES)))
    elif kind == "value" and op.f == "cas":
        op = dataclasses.replace(
            op, value=[draw(st.sampled_from(VALUES)), draw(st.sampled_from(VALUES))]
        )
    elif kind == "earlier" and op.ret != END_OF_TIME:
        op = dataclasses.replace(op, ret=max(op.call, op.ret - draw(st.integers(1, 6))))
    elif kind == "later":
        shift = draw(st.integers(1, 6))
        op = dataclasses.replace(op, call=op.call + shift, ret=op.ret + shift)
    elif kind == "status" and op.status != "info":
        op = dataclasses.replace(op, status="ok" if op.status == "fail" else "fail")
    ops[i] = op


def _agree(ops, name):
    model = get_model(name, _initial(name) if name in ("set",) else None)
    expected = linearizable_by_brute_force(ops, model)
    result = check(ops, model)
    assert result["valid"] is expected, (expected, result, ops)
    if expected is False:
        assert result["evidence"] is not None
    return expected


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.sampled_from(MODEL_NAMES).flatmap(lambda n: st.tuples(st.just(n), histories(n))))
def test_histories_from_a_sequential_model_are_linearizable_and_both_checkers_say_so(case):
    name, ops = case
    assert _agree(ops, name) is True


@SETTINGS
@given(
    st.sampled_from(MODEL_NAMES).flatmap(
        lambda n: st.tuples(st.just(n), histories(n).flatmap(lambda h: perturbed(h, n)))
    )
)
def test_perturbed_histories_get_the_brute_force_verdict(case):
    name, ops = case
    _agree(ops, name)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(MODEL_NAMES).flatmap(
        lambda n: st.tuples(
            st.just(n), histories(n, max_ops=30, max_procs=4).flatmap(lambda h: perturbed(h, n))
        )
    )
)
def test_on_longer_histories_the_search_agrees_with_a_plain_memoised_search(case):
    name, ops = case
    model = get_model(name)
    expected = linearizable_by_plain_search(ops, model)
    assert check(ops, model)["valid"] is expected, ops
    # And with growth pruning looking at reads the way it does on long
    # histories: the nearest few and a moving stretch, cutting doomed ancestors.
    saved = lin._FULL_SCAN_READS, lin._READ_HORIZON
    lin._FULL_SCAN_READS, lin._READ_HORIZON = 0, 2
    try:
        assert check(ops, model)["valid"] is expected, ops
    finally:
        lin._FULL_SCAN_READS, lin._READ_HORIZON = saved


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(MODEL_NAMES).flatmap(
        lambda n: st.tuples(st.just(n), histories(n).flatmap(lambda h: perturbed(h, n)))
    )
)
def test_the_plain_search_agrees_with_brute_force(case):
    name, ops = case
    model = get_model(name)
    assert linearizable_by_plain_search(ops, model) is linearizable_by_brute_force(ops, model)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["register", "cas-register", "etcd", "set", "mutex"]).flatmap(
        lambda n: st.tuples(
            st.just(n),
            histories(n, max_ops=30, max_procs=4, info_weight=4).flatmap(lambda h: perturbed(h, n)),
        )
    )
)
def test_with_many_info_ops_the_search_agrees_with_the_plain_search(case):
    # Many unknown outcomes with few distinct effects: the search then groups
    # optional ops by effect, a path the other tests rarely reach.
    name, ops = case
    model = get_model(name)
    expected = linearizable_by_plain_search(ops, model)
    assert check(ops, model)["valid"] is expected, ops
    # And with optional ops always grouped by effect, however few share one.
    ratio, lin._CLASS_SCAN_RATIO = lin._CLASS_SCAN_RATIO, 1
    try:
        assert check(ops, model)["valid"] is expected, ops
    finally:
        lin._CLASS_SCAN_RATIO = ratio
