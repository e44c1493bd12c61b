"""Linearizability checking: a Wing-Gong / Lowe search with memoisation, one partition at a time.

`check(ops, model)` splits the history with `model.partition` (P-compositionality:
a history is linearizable iff every partition is), searches each partition and
stops at the first illegal one. The search is a depth-first walk over
configurations (set of linearized operations as an int bitset, model state);
a configuration seen once is never expanded again.

What makes it fast enough in Python, each justified where it is used:

- Real-time order as a window: an operation may go next only if no pending
  operation returned before it was called, i.e. its call is <= the earliest
  pending return. Operations are sorted by call, so the window is a short
  scan from the first pending operation.
- Reads go greedily: an operation that never changes any state (a read, a
  failed cas in the etcd grammar) and is legal now is placed at once, with no
  branching. Placing it now is never worse: it leaves the state as it is and
  only widens the window.
- Operations with an unknown outcome (`info`, never returned: ret is the end of
  time) are optional. They are tried after the definite ones, never when they
  would leave the state unchanged, and of several pending ones with the same
  effect only the first is tried. The search succeeds once every definite
  operation is placed.
- Evidence in bounded memory: the search keeps only the deepest prefix it has
  reached (by definite operations placed), its state, and at the end the
  operations that could not go next from there.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from checkers.models import Model
from checkers.operation import END_OF_TIME, Operation

# How many expansions between two looks at the clock.
_CLOCK_EVERY = 512


@dataclass(frozen=True, slots=True)
class PartitionVerdict:
    """The outcome for one partition: valid True/False/None (None = out of time)."""

    valid: bool | None
    explored: int
    evidence: dict | None = None


@dataclass(slots=True)
class _Prepared:
    """One partition's operations, laid out as parallel lists for the inner loop.

    Definite ops take bits 0..n_req-1 in call order; optional ops take the bits
    after them, also in call order, so the lowest unset bit is the first
    pending definite op.
    """

    ops: list[Operation]
    n_req: int
    calls: list[float]
    rets: list[float]
    trans: list
    read_only: list[bool]
    effect: list[Any]
    optional: list[int] = field(default_factory=list)


def _prepare(ops: Sequence[Operation], model: Model) -> _Prepared:
    required = [op for op in ops if op.ret != END_OF_TIME]
    # An optional op that never changes the state can always be left out.
    optional = [op for op in ops if op.ret == END_OF_TIME and not model.read_only(op)]
    required.sort(key=lambda op: (op.call, op.index))
    optional.sort(key=lambda op: (op.call, op.index))
    ordered = required + optional
    n_req = len(required)
    return _Prepared(
        ops=ordered,
        n_req=n_req,
        calls=[op.call for op in ordered],
        rets=[op.ret for op in ordered],
        trans=[model.transition(op) for op in ordered],
        read_only=[model.read_only(op) for op in ordered],
        effect=[model.effect_key(op) for op in ordered],
        optional=list(range(n_req, len(ordered))),
    )


def _window(p: _Prepared, lin: int) -> tuple[list[int], list[int], float]:
    """Definite and optional ops that may be linearized next, and the earliest pending return."""
    calls, rets, n_req = p.calls, p.rets, p.n_req
    j = ((lin + 1) & ~lin).bit_length() - 1  # first pending definite op
    req: list[int] = []
    min_ret = END_OF_TIME
    while j < n_req:
        if not (lin >> j) & 1:
            if calls[j] > min_ret:
                break
            if rets[j] < min_ret:
                min_ret = rets[j]
            req.append(j)
        j += 1
    opt: list[int] = []
    if p.optional:
        effects_seen = set()
        effect = p.effect
        for o in p.optional:
            if calls[o] > min_ret:
                break
            if not (lin >> o) & 1 and effect[o] not in effects_seen:
                effects_seen.add(effect[o])
                opt.append(o)
    return req, opt, min_ret


def _search(p: _Prepared, init: Any, deadline: float | None) -> tuple[bool | None, int, tuple]:
    """Depth-first search; returns (valid, configurations explored, deepest (lin, state, path))."""
    n_req = p.n_req
    if n_req == 0:
        return True, 0, (0, init, [])
    req_mask = (1 << n_req) - 1
    trans, read_only = p.trans, p.read_only
    seen: set = set()
    path: list[int] = []
    # A frame: [lin, state, children, next child, path length at entry, depth]
    frames: list[list] = []
    best_depth = -1
    best: tuple = (0, init, [])
    best_pending = False
    explored = 0

    def enter(lin: int, state: Any) -> list | None:
        """Place greedy reads, then list the children; None means every definite op is placed."""
        while True:
            if lin & req_mask == req_mask:
                return None
            req, opt, _ = _window(p, lin)
            for j in req:
                if read_only[j] and trans[j](state):
                    lin |= 1 << j
                    path.append(j)
                    break
            else:
                break
        children = []
        for j in req:
            if not read_only[j]:
                for t in trans[j](state):
                    children.append((j, t))
        for o in opt:
            for t in trans[o](state):
                if t != state:
                    children.append((o, t))
        return [lin, state, children, 0]

    frame = enter(0, init)
    if frame is None:
        return True, 1, (0, init, [])
    frame.append(0)
    frame.append(bin(frame[0] & req_mask).count("1"))
    frames.append(frame)
    seen.add((frame[0], init))
    while frames:
        frame = frames[-1]
        lin, state, children, k = frame[0], frame[1], frame[2], frame[3]
        depth = frame[5]
        if depth > best_depth:
            best_depth = depth
            best_pending = True
        if k == len(children):
            if best_pending:
                best = (lin, state, list(path))
                best_pending = False
            del path[frame[4]:]
            frames.pop()
            continue
        frame[3] = k + 1
        j, t = children[k]
        nlin = lin | (1 << j)
        key = (nlin, t)
        if key in seen:
            continue
        seen.add(key)
        explored += 1
        if deadline is not None and explored % _CLOCK_EVERY == 0 and time.monotonic() > deadline:
            return None, explored, best
        start = len(path)
        path.append(j)
        child = enter(nlin, t)
        if child is None:
            return True, explored, best
        child.append(start)
        child.append(depth + (1 if j < n_req else 0) + len(path) - start - 1)
        frames.append(child)
    return False, explored, best


def _op_dict(op: Operation, model: Model) -> dict:
    return {
        "index": op.index,
        "process": op.process,
        "f": op.f,
        "key": op.key,
        "value": op.value,
        "output": op.output,
        "status": op.status,
        "call": op.call,
        "ret": None if op.ret == END_OF_TIME else op.ret,
        "complete_index": op.complete_index,
        "description": model.describe_op(op),
    }


def _evidence(key: Any, p: _Prepared, model: Model, best: tuple) -> dict:
    """What a person needs to see why this partition is not linearizable."""
    lin, state, path = best
    req, opt, min_ret = _window(p, lin)
    blocked, dead_ends = [], []
    for j in req + opt:
        op = p.ops[j]
        entry = {
            "op": op.index,
            "description": model.describe_op(op),
            "needs": model.needs(op),
        }
        if p.trans[j](state):
            dead_ends.append(entry)
        else:
            blocked.append(entry)
    # The part of the partition that matters: everything called before the
    # earliest pending return (the prefix and the ops that could go next).
    shown = [op for op in p.ops if op.call <= min_ret]
    shown.sort(key=lambda op: (op.call, op.index))
    pending_definite = [p.ops[j].index for j in range(p.n_req) if not (lin >> j) & 1]
    return {
        "key": key,
        "partition_operations": len(p.ops),
        "operations": [_op_dict(op, model) for op in shown],
        "linearized_prefix": [p.ops[j].index for j in path],
        "state_after_prefix": model.describe_state(state),
        "blocked": blocked,
        "legal_but_dead_end": dead_ends,
        "definite_ops_left": len(pending_definite),
    }


def check_partition(
    ops: Sequence[Operation], model: Model, time_limit: float | None = None, key: Any = None
) -> PartitionVerdict:
    """Search one partition (ops already filtered by `model.relevant`)."""
    p = _prepare(ops, model)
    deadline = None if time_limit is None else time.monotonic() + time_limit
    valid, explored, best = _search(p, model.init(), deadline)
    evidence = _evidence(key, p, model, best) if valid is False else None
    return PartitionVerdict(valid, explored, evidence)


def _jsonable_key(key: Any) -> Any:
    if isinstance(key, tuple):
        return [_jsonable_key(k) for k in key]
    if isinstance(key, frozenset):
        return sorted((_jsonable_key(k) for k in key), key=repr)
    return key


def check(ops: Sequence[Operation], model: Model, time_limit: float | None = None) -> dict:
    """Is this history linearizable under `model`? A plain JSON-able verdict dict.

    `time_limit` (seconds) applies to each partition separately: a partition
    that runs out is `unknown` for its key alone. The first illegal partition
    settles the verdict as False; otherwise any unknown partition makes it "unknown".
    """
    started = time.monotonic()
    relevant = [op for op in ops if model.relevant(op)]
    parts = model.partition(relevant)
    settled, unknown, unchecked = [], [], []
    failing_key, evidence, valid = None, None, True
    explored = 0
    for key, part in parts.items():
        if failing_key is not None:
            unchecked.append(_jsonable_key(key))
            continue
        verdict = check_partition(part, model, time_limit, _jsonable_key(key))
        explored += verdict.explored
        if verdict.valid is None:
            unknown.append(_jsonable_key(key))
            valid = "unknown"
        else:
            settled.append(_jsonable_key(key))
            if verdict.valid is False:
                failing_key, evidence, valid = _jsonable_key(key), verdict.evidence, False
    return {
        "valid": valid,
        "checker": "linearizability",
        "model": model.name,
        "keys": {"settled": settled, "unknown": unknown, "unchecked": unchecked},
        "failing_key": failing_key,
        "evidence": evidence,
        "operations": len(ops),
        "partitions": len(parts),
        "configurations": explored,
        "elapsed_s": time.monotonic() - started,
    }
