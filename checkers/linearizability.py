"""Linearizability checking: a Wing-Gong / Lowe search with memoisation, one partition at a time.

`check(ops, model)` splits the history with `model.partition` (P-compositionality:
a history is linearizable iff every partition is) and searches the partitions
round-robin with a doubling budget, so an easy illegal partition settles the
verdict before a hard legal one is finished. Each search is a depth-first walk
over configurations (set of linearized operations as an int bitset, model
state); a configuration seen once is never expanded again.

What makes it fast enough in Python (each is justified where it is used):

- Real-time order as a window: an operation may go next only if no pending
  operation returned before it was called, i.e. its call is <= the earliest
  pending return. Operations are sorted by call, so the window is a short walk
  over the pending bits. Candidates are tried earliest-return first.
- Reads go greedily: an operation that never changes any state (a read, a
  failed cas in the etcd grammar) and is legal now is placed at once, with no
  branching. Placing it now is never worse: it leaves the state as it is and
  only widens the window.
- Operations with an unknown outcome (`info`, never returned: ret is the end of
  time) are optional. The search succeeds once every definite operation is
  placed. Optional ops are tried after the definite ones, never when they would
  leave the state unchanged, only the first of several pending ones with the
  same effect, and a configuration is skipped when one with the same definite
  ops and state but fewer optional ops used was already explored (subsumption).
- Growth pruning, for models that say their state only grows between resets
  (append-only strings, grow-only sets; see `Model.reachable`): a configuration
  is dropped as soon as some pending read can no longer hold from its state.
- Bounded memory: the memo is dropped when it passes a cap (it only saves
  repeated work), and evidence keeps only the deepest prefix reached (by
  definite operations placed) and its state; the operations that could not go
  next are worked out from those at the end.
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from checkers.models import Model
from history.operation import END_OF_TIME, UNKNOWN, Operation


class _NoBlock:
    """Marks a configuration not reached through optional ops (no state can equal it)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return other is self

    def __hash__(self) -> int:
        return 0


_NO_BLOCK = _NoBlock()

# Configurations a partition explores per turn before the next partition's turn
# (and before the clock is looked at); doubled every round.
_SLICE = 2000
_MAX_SLICE = 64_000

# Memo entries (configurations) kept before the memo is dropped: up to a
# kilobyte or so each with big states, so this keeps a search under 1 GiB.
_MEMO_CAP = 600_000

# Optional-op sets remembered per (definite ops, state): scanning a longer
# list costs more than the repeated work it would save.
_SUBSUMERS_PER_KEY = 16

# Scan optional ops by effect when there are at least this many per effect.
_CLASS_SCAN_RATIO = 4

# Growth pruning checks every pending read per configuration while a
# partition has at most this many; beyond, the nearest _READ_HORIZON and a
# moving stretch as many again (a walk over all would be quadratic).
_FULL_SCAN_READS = 2048
_READ_HORIZON = 64


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
    # Bits of all optional ops, and per optional op the earlier optional ops
    # with the same effect: while one of those is pending, trying this one
    # too would only repeat the same configurations.
    optional_mask: int = 0
    twins_before: list[int] = field(default_factory=list)
    # The same as masks per effect, when effects are few next to the ops.
    effect_classes: list[int] = field(default_factory=list)
    # Growth pruning (see Model.reachable): per op a predicate or None, and
    # the bits of ops that may reset the state.
    reach: list = field(default_factory=list)
    reach_reads: list[int] = field(default_factory=list)
    reset_mask: int = 0
    # Per read: the resets that may come before it and leave a state it can grow from.
    reset_compat: list[int] = field(default_factory=list)


def _prepare(ops: Sequence[Operation], model: Model) -> _Prepared:
    required = [op for op in ops if op.ret != END_OF_TIME]
    # An optional op that never changes the state can always be left out.
    optional = [op for op in ops if op.ret == END_OF_TIME and not model.read_only(op)]
    required.sort(key=lambda op: (op.call, op.index))
    optional.sort(key=lambda op: (op.call, op.index))
    ordered = required + optional
    n_req = len(required)
    reach = [model.reachable(op) if i < n_req else None for i, op in enumerate(ordered)]
    resets = [i for i, op in enumerate(ordered) if model.resets(op)] if any(reach) else []
    return _Prepared(
        ops=ordered,
        n_req=n_req,
        calls=[op.call for op in ordered],
        rets=[op.ret for op in ordered],
        trans=[model.transition(op) for op in ordered],
        read_only=[model.read_only(op) for op in ordered],
        optional_mask=((1 << len(ordered)) - 1) ^ ((1 << n_req) - 1),
        twins_before=_twins_before(ordered, n_req, model),
        effect_classes=_effect_classes(ordered, n_req, model),
        reach=reach if any(g is not None for g in reach) else [],
        reach_reads=[i for i, g in enumerate(reach) if g is not None],
        reset_mask=sum(1 << i for i in resets),
        reset_compat=_reset_compat(reach, resets, ordered, model),
    )


def _twins_before(ops: list[Operation], n_req: int, model: Model) -> list[int]:
    masks = [0] * len(ops)
    by_effect: dict[Any, int] = {}
    for i in range(n_req, len(ops)):
        key = model.effect_key(ops[i])
        masks[i] = by_effect.get(key, 0)
        by_effect[key] = masks[i] | (1 << i)
    return masks


def _effect_classes(ops: list[Operation], n_req: int, model: Model) -> list[int]:
    classes: dict[Any, int] = {}
    for i in range(n_req, len(ops)):
        key = model.effect_key(ops[i])
        classes[key] = classes.get(key, 0) | (1 << i)
    # Walking the pending bits is cheaper while most optional ops differ.
    return list(classes.values()) if _CLASS_SCAN_RATIO * len(classes) <= len(ops) - n_req else []


def _reset_compat(reach: list, resets: list[int], ops: list[Operation], model: Model) -> list[int]:
    """Per read: bits of the resets that may come before it and leave a state it can grow from.

    Asking `model.reset_allows` for every (reset, read) pair is quadratic, so
    where the model names what a reset leaves and what a read needs
    (`reset_key`, `read_key`) the resets are grouped by that, in call order,
    with running masks: a read then finds its resets with one bisection.
    """
    compat = [0] * len(ops)
    groups: dict[Any, tuple[list[float], list[int]]] = {}
    unkeyed_calls: list[float] = []
    unkeyed_masks: list[int] = []
    # Bisection needs call order; definite and optional ops are each sorted, not together.
    for i in sorted(resets, key=lambda i: ops[i].call):
        key = model.reset_key(ops[i])
        if key is None:
            calls, masks = unkeyed_calls, unkeyed_masks
        else:
            calls, masks = groups.setdefault(key[0], ([], []))
        calls.append(ops[i].call)
        masks.append((masks[-1] if masks else 0) | (1 << i))
    for j, holds in enumerate(reach):
        if holds is None:
            continue
        read = ops[j]
        key = model.read_key(read)
        if key is None:
            mask = 0
            for i in resets:
                if ops[i].call <= read.ret and model.reset_allows(ops[i], read):
                    mask |= 1 << i
            compat[j] = mask
            continue
        mask = 0
        for calls, masks in (groups.get(key[0], ([], [])), (unkeyed_calls, unkeyed_masks)):
            n = bisect_right(calls, read.ret)
            if n:
                mask |= masks[n - 1]
        compat[j] = mask
    return compat


def _window(p: _Prepared, lin: int) -> tuple[list[int], list[int], float]:
    """Definite and optional ops that may be linearized next, and the earliest pending return.

    Walks the pending ops' bits from the lowest (ops are in call order) and
    stops at the first one called after the earliest pending return.
    """
    calls, rets = p.calls, p.rets
    pending = ~lin & ((1 << p.n_req) - 1)
    req: list[int] = []
    min_ret = END_OF_TIME
    while pending:
        low = pending & -pending
        j = low.bit_length() - 1
        if calls[j] > min_ret:
            break
        if rets[j] < min_ret:
            min_ret = rets[j]
        req.append(j)
        pending ^= low
    opt: list[int] = []
    if p.optional_mask:
        waiting = p.optional_mask & ~lin
        if p.effect_classes:
            # Few effects: the first pending op of each, if it has been called.
            for members in p.effect_classes:
                m = members & waiting
                if m:
                    o = (m & -m).bit_length() - 1
                    if calls[o] <= min_ret:
                        opt.append(o)
        else:
            rest = waiting
            twins = p.twins_before
            while rest:
                low = rest & -rest
                o = low.bit_length() - 1
                if calls[o] > min_ret:
                    break
                if not twins[o] & waiting:
                    opt.append(o)
                rest ^= low
    return req, opt, min_ret


class _Search:
    """A resumable depth-first search over one partition's configurations.

    `run(budget)` explores at most `budget` new configurations and returns
    True (linearizable), False (not) or None (not finished yet). Being
    resumable lets `check` share time between partitions round-robin, so one
    hard partition does not hide an easy illegal one (the first illegal
    partition settles the verdict).
    """

    def __init__(self, p: _Prepared, init: Any):
        self.p = p
        self.init = init
        self.req_mask = (1 << p.n_req) - 1
        self.seen: set = set()
        # With optional ops: (definite ops placed, state) -> optional-op sets used.
        self.subsumers: dict = {}
        self.memo_cap = _MEMO_CAP
        self.rotation = 0  # where _may_hold's far stretch of reads starts
        self.doomed_read = -1  # the read _may_hold last found can no longer hold
        self.path: list[int] = []
        # A frame: [lin, state, children, next child, path length at entry,
        # depth, state before the optional block that led here or _NO_BLOCK]
        self.frames: list[list] = []
        self.best_depth = -1
        self.best: tuple = (0, init, [])
        self.best_pending = False
        self.explored = 0
        self.spent = 0.0
        self.result: bool | None = None
        # With optional ops: the same, for configurations inside an optional
        # block, keyed also by the state before the block (see _enter).
        self.block_subsumers: dict = {}
        frame = self._enter(0, init, _NO_BLOCK)
        if frame is None:
            self.result = True
        else:
            if p.reach and not self._may_hold(frame[0], init, horizon=len(p.reach_reads)):
                # Once, at the start, every read: one no write can ever explain
                # ends the search here, however far into the history it is.
                frame[2] = []
            self.doomed_read = -1
            frame[4] = 0
            frame[5] = bin(frame[0] & self.req_mask).count("1")
            self.frames.append(frame)
            self.seen.add((0, init))
            self.subsumers[(0, init)] = [0]

    def _enter(self, lin: int, state: Any, block_from: Any) -> list | None:
        """Place greedy reads, then list the children; None means every definite op is placed.

        `block_from` is the state before the run of optional ops just placed
        (or _NO_BLOCK). Such a run is only worth placing if the definite op
        after it does something it could not have done without it: otherwise
        placing that op directly, keeping the optional ops for later, does
        all the same and more. So inside a block, a definite op is a child only
        if its next state could not be reached from `block_from`.
        """
        p, path, req_mask = self.p, self.path, self.req_mask
        trans, read_only = p.trans, p.read_only
        while True:
            if lin & req_mask == req_mask:
                return None
            req, opt, _ = _window(p, lin)
            placed = False
            for j in req:
                if read_only[j] and trans[j](state):
                    # Reads leave the state alone, so all legal ones go at once;
                    # the window may then widen, hence the next pass.
                    lin |= 1 << j
                    path.append(j)
                    placed = True
            if not placed:
                break
            # A read placed here may have been legal only thanks to the block,
            # so count the block as having done its work (lifting the
            # restriction is always safe: it only means trying more).
            block_from = _NO_BLOCK
        if p.reach and not self._may_hold(lin, state):
            return [lin, state, [], 0, None, None, block_from]
        children = []
        in_block = block_from is not _NO_BLOCK
        for j in sorted(req, key=p.rets.__getitem__):
            if not read_only[j]:
                for t in trans[j](state):
                    if in_block and t in trans[j](block_from):
                        continue
                    children.append((j, t))
        for o in opt:
            for t in trans[o](state):
                # An optional op that changes nothing is never worth placing.
                if t != state:
                    children.append((o, t))
        return [lin, state, children, 0, None, None, block_from]

    def _may_hold(self, lin: int, state: Any, horizon: int = 0) -> bool:
        """False when some pending read can no longer hold, whatever comes next.

        A pending read is linearized after everything placed so far, so its
        state grows from the current one, unless a pending reset that may come
        before it (see Model.resets) restarts from somewhere it could still hold.
        """
        p = self.p
        pending_resets = p.reset_mask & ~lin
        reach, reads, compat = p.reach, p.reach_reads, p.reset_compat
        front = ((lin + 1) & ~lin).bit_length() - 1
        first = bisect_left(reads, front)
        horizon = horizon or (len(reads) if len(reads) <= _FULL_SCAN_READS else _READ_HORIZON)
        # The nearest reads, and a further stretch that moves along on every
        # call: a read that can no longer hold stays so down that branch, so
        # it is caught a few configurations later, while a long history does
        # not cost a walk over all its reads per configuration.
        near = min(len(reads), first + horizon)
        far = len(reads) - near
        if far > horizon:
            self.rotation = start = (self.rotation + horizon) % far
            stretches = ((first, near), (near + start, min(len(reads), near + start + horizon)))
        else:
            stretches = ((first, len(reads)),)
        for lo, hi in stretches:
            for n in range(lo, hi):
                j = reads[n]
                if not (lin >> j) & 1 and not compat[j] & pending_resets and not reach[j](state):
                    self.doomed_read = j
                    return False
        return True

    def _cut_doomed_ancestors(self) -> None:
        """End the frames on the stack that the doomed read already dooms.

        A read that can no longer hold at a configuration cannot hold anywhere
        below it either (pending resets only shrink, growth only grows), so
        every ancestor where it was already doomed has nothing left to find.
        Without this, a read caught late by the moving stretch in `_may_hold`
        would be caught again in every sibling branch.
        """
        j, p = self.doomed_read, self.p
        self.doomed_read = -1
        holds, compat = p.reach[j], p.reset_compat[j]
        for frame in reversed(self.frames):
            lin = frame[0]
            if (lin >> j) & 1 or compat & p.reset_mask & ~lin or holds(frame[1]):
                break
            frame[3] = len(frame[2])

    def _subsumed(self, lin: int, state: Any, block_from: Any) -> bool:
        """Has a configuration been explored with these definite ops, this state and fewer optional ops used?

        Optional ops only add choices, so having used fewer of them can do
        everything this configuration can: it is subsumed. Otherwise it is
        recorded (dropping the records it subsumes) and explored. Inside an
        optional block fewer children are tried, so such a configuration is
        subsumed by one outside a block, but not the other way round.
        """
        used = lin >> self.p.n_req
        key = (lin & self.req_mask, state)
        prior = self.subsumers.get(key)
        if prior is not None:
            for m in prior:
                if not m & ~used:
                    return True
        if block_from is _NO_BLOCK:
            table = self.subsumers
        else:
            table = self.block_subsumers
            key = (key[0], state, block_from)
            prior = table.get(key)
            if prior is not None:
                for m in prior:
                    if not m & ~used:
                        return True
        if prior is None:
            table[key] = [used]
            return False
        prior[:] = [m for m in prior if used & ~m]
        if len(prior) < _SUBSUMERS_PER_KEY:
            prior.append(used)
        # else: not remembered; it may be explored again, which is only slower.
        return False

    def run(self, budget: int) -> bool | None:
        if self.result is not None:
            return self.result
        started = time.monotonic()
        n_req = self.p.n_req
        frames, path, seen, enter = self.frames, self.path, self.seen, self._enter
        subsume = bool(self.p.optional_mask)
        best_depth, best_pending = self.best_depth, self.best_pending
        explored = self.explored
        stop_at = explored + budget
        result = None
        while frames:
            frame = frames[-1]
            lin, state, children, k = frame[0], frame[1], frame[2], frame[3]
            depth = frame[5]
            if depth > best_depth:
                best_depth = depth
                best_pending = True
            if k == len(children):
                if best_pending:
                    # Backing out of the deepest prefix so far: remember it.
                    self.best = (lin, state, list(path))
                    best_pending = False
                del path[frame[4] :]
                frames.pop()
                continue
            frame[3] = k + 1
            j, t = children[k]
            nlin = lin | (1 << j)
            if subsume:
                if j < n_req:
                    block_from = _NO_BLOCK
                else:
                    block_from = frame[6]
                    if block_from is _NO_BLOCK:
                        block_from = state
                    elif t == block_from:
                        # The block has come back to where it started: it did nothing.
                        continue
                if self._subsumed(nlin, t, block_from):
                    continue
            else:
                block_from = _NO_BLOCK
                key = (nlin, t)
                if key in seen:
                    continue
                seen.add(key)
            explored += 1
            if (
                not explored & 0xFFF
                and len(seen) + len(self.subsumers) + len(self.block_subsumers) > self.memo_cap
            ):
                # Bounded memory: the memo only saves repeated work, so when it
                # grows too big, forget it and carry on (still sound, maybe slower).
                seen.clear()
                self.subsumers.clear()
                self.block_subsumers.clear()
            start = len(path)
            path.append(j)
            child = enter(nlin, t, block_from)
            if child is None:
                result = True
                break
            if self.doomed_read >= 0:
                self._cut_doomed_ancestors()
            child[4] = start
            child[5] = depth + (1 if j < n_req else 0) + len(path) - start - 1
            frames.append(child)
            if explored >= stop_at:
                break
        else:
            result = False
        self.best_depth, self.best_pending, self.explored = best_depth, best_pending, explored
        self.spent += time.monotonic() - started
        if result is not None:
            self.result = result
            if result:
                # Nothing left to explain: let the memo go.
                self.seen = set()
                self.subsumers = {}
                self.block_subsumers = {}
                self.frames = []
        return result


def _op_dict(op: Operation, model: Model) -> dict:
    return {
        "index": op.index,
        "process": op.process,
        "f": op.f,
        "key": op.key,
        "value": op.value,
        "output": None if op.output is UNKNOWN else op.output,
        **({"unknown": True} if op.output is UNKNOWN else {}),
        "status": op.status,
        "call": op.call,
        "ret": None if op.ret == END_OF_TIME else op.ret,
        "complete_index": op.complete_index,
        "description": model.describe_op(op),
    }


def _evidence(key: Any, p: _Prepared, model: Model, best: tuple) -> dict:
    """What a person needs to see why this partition is not linearizable.

    From the deepest configuration reached: the prefix that got there, the
    state after it, the ops that may go next but are illegal in that state
    ("blocked", with the state each needs), those that are legal but lead
    nowhere, and pending reads that can no longer hold at all.
    """
    lin, state, path = best
    req, opt, min_ret = _window(p, lin)

    def entry(j: int, reason: str) -> dict:
        op = p.ops[j]
        return {
            "op": op.index,
            "description": model.describe_op(op),
            "needs": model.needs(op),
            "reason": reason,
        }

    blocked, dead_ends = [], []
    for j in req + opt:
        if p.trans[j](state):
            dead_ends.append(entry(j, "legal here, but every way on from it fails"))
        else:
            blocked.append(entry(j, "illegal in the state after the prefix"))
    shown_bits = 0
    if p.reach:
        pending_resets = p.reset_mask & ~lin
        for j in p.reach_reads:
            if (lin >> j) & 1 or j in req:
                continue
            if not p.reset_compat[j] & pending_resets and not p.reach[j](state):
                blocked.append(entry(j, "can no longer hold: the state only grows from here"))
                shown_bits |= 1 << j
    # The part of the partition that matters: everything called before the
    # earliest pending return (the prefix and the ops that could go next).
    shown = [op for j, op in enumerate(p.ops) if op.call <= min_ret or (shown_bits >> j) & 1]
    shown.sort(key=lambda op: (op.call, op.index))
    return {
        "key": key,
        "partition_operations": len(p.ops),
        "operations": [_op_dict(op, model) for op in shown],
        "linearized_prefix": [p.ops[j].index for j in path],
        "state_after_prefix": model.describe_state(state),
        "blocked": blocked,
        "legal_but_dead_end": dead_ends,
        "definite_ops_left": sum(1 for j in range(p.n_req) if not (lin >> j) & 1),
    }


def check_partition(
    ops: Sequence[Operation], model: Model, time_limit: float | None = None, key: Any = None
) -> PartitionVerdict:
    """Search one partition (ops already filtered by `model.relevant`) to the end or the limit."""
    search = _Search(_prepare(ops, model), model.init())
    while search.run(_SLICE) is None:
        if time_limit is not None and search.spent > time_limit:
            return PartitionVerdict(None, search.explored)
    return _verdict(search, model, key)


def _verdict(search: _Search, model: Model, key: Any) -> PartitionVerdict:
    evidence = _evidence(key, search.p, model, search.best) if search.result is False else None
    return PartitionVerdict(search.result, search.explored, evidence)


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
    keys = {key: _jsonable_key(key) for key in parts}
    searches = {key: _Search(_prepare(part, model), model.init()) for key, part in parts.items()}
    settled, unknown = [], []
    failing_key, evidence, failed = None, None, False
    explored = 0
    # Round-robin with a doubling budget: every open partition gets a slice per
    # round, so an easy illegal partition is found before a hard legal one is
    # finished, at most doubling the work on histories that are linearizable.
    budget = _SLICE
    open_keys = list(parts)
    open_keys_left: list = []
    failed_raw = None
    while open_keys and not failed:
        still_open = []
        # The memo bound is shared by the partitions still open.
        memo_cap = max(_MEMO_CAP // len(open_keys), min(_MEMO_CAP, 10_000))
        for key in open_keys:
            search = searches[key]
            search.memo_cap = memo_cap
            result = search.run(budget)
            if result is None:
                if time_limit is not None and search.spent > time_limit:
                    unknown.append(keys[key])
                    explored += search.explored
                    searches[key] = None
                else:
                    still_open.append(key)
                continue
            settled.append(keys[key])
            explored += search.explored
            if result is False:
                failing_key, failed, failed_raw = keys[key], True, key
                evidence = _verdict(search, model, failing_key).evidence
                break
            searches[key] = None  # free its memo now
        # After a failure, the keys not yet settled are reported as unchecked.
        open_keys_left = [k for k in open_keys if searches[k] is not None and k != failed_raw]
        open_keys = [] if failed else still_open
        # Capped, so a partition past its time limit is noticed within a second or so.
        budget = min(budget * 2, _MAX_SLICE)
    unchecked = [keys[k] for k in open_keys_left]
    valid: bool | str = False if failed else ("unknown" if unknown else True)
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

