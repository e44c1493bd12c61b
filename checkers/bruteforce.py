"""A brute-force linearizability oracle for tiny histories: try every order real time allows.

It shares nothing with the real search except the models' `step` and
`relevant` (the specification itself): no memo, no window, no greedy reads,
no partitions checked one by one (a keyed model's partitions are run side by
side in one combined state), no pruning hooks. The differential tests hold
`checkers.linearizability.check` to its verdicts. Exponential: keep histories
to about eight operations.
"""

from __future__ import annotations

from collections.abc import Sequence

from checkers.models import Model
from history.operation import END_OF_TIME, Operation


def _side_by_side(ops: Sequence[Operation], model: Model) -> tuple[list, dict[int, int], list]:
    """The relevant ops, which partition each op is in (by id), and the partitions."""
    relevant = [op for op in ops if model.relevant(op)]
    parts = list(model.partition(relevant).values())
    part_of = {id(op): n for n, part in enumerate(parts) for op in part}
    return relevant, part_of, parts


def linearizable_by_brute_force(ops: Sequence[Operation], model: Model) -> bool:
    """True iff some order of the ops respects real time and the model.

    Ops with ret END_OF_TIME may be placed anywhere after their call or left out
    (their outcome is unknown); every other relevant op must be placed. Op a
    must come before op b when a returned before b was called (a.ret < b.call).
    """
    relevant, part_of, parts = _side_by_side(ops, model)
    states = tuple(model.init() for _ in parts)

    def must_precede(a: Operation, b: Operation) -> bool:
        return a.ret < b.call

    def search(remaining: tuple[Operation, ...], states: tuple) -> bool:
        if all(op.ret == END_OF_TIME for op in remaining):
            return True
        for op in remaining:
            if any(must_precede(other, op) for other in remaining if other is not op):
                continue
            rest = tuple(other for other in remaining if other is not op)
            n = part_of[id(op)]
            for nxt in model.step(states[n], op):
                if search(rest, states[:n] + (nxt,) + states[n + 1 :]):
                    return True
        return False

    return search(tuple(relevant), states)


def linearizable_by_plain_search(ops: Sequence[Operation], model: Model) -> bool:
    """The same question by a plain memoised search: no window tricks, greedy reads or pruning hooks.

    Exponential only in concurrency, so it reaches histories of a few dozen
    operations, where brute force cannot; tests use it to hold the real
    search's pruning to account on bigger histories.
    """
    relevant, part_of, parts = _side_by_side(ops, model)
    failed: set = set()

    def search(remaining: frozenset[int], states: tuple) -> bool:
        if all(relevant[i].ret == END_OF_TIME for i in remaining):
            return True
        if (remaining, states) in failed:
            return False
        earliest_return = min(relevant[i].ret for i in remaining)
        for i in remaining:
            op = relevant[i]
            if op.call > earliest_return:
                continue
            n = part_of[id(op)]
            for nxt in model.step(states[n], op):
                if search(remaining - {i}, states[:n] + (nxt,) + states[n + 1 :]):
                    return True
        failed.add((remaining, states))
        return False

    return search(frozenset(range(len(relevant))), tuple(model.init() for _ in parts))
