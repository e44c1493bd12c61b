"""Cross-check: the simulator's histories go through the project's linearizability checker.

The simulator's own read check is a simple per-key rule; the full checker must
agree that correct runs are linearizable and that a stale-read run is not.
"""

from __future__ import annotations

import random

import pytest

from targets.raftkv.sim import SimConfig, random_schedule, run

linearizability = pytest.importorskip("checkers.linearizability")
models = pytest.importorskip("checkers.models")
operation = pytest.importorskip("checkers.operation")

F = {"get": "read", "put": "write", "cas": "cas"}


def operations(history: list[dict]) -> list:
    """Pair the simulator's invoke/complete events into checker Operations (fails dropped)."""
    open_ops, ops = {}, []
    for e in history:
        if e["type"] == "invoke":
            open_ops[e["process"]] = e
            continue
        inv = open_ops.pop(e["process"])
        if e["type"] == "fail":
            continue  # it certainly did not happen
        ops.append(operation.Operation(
            index=inv["index"], process=e["process"], f=F[e["f"]],
            value=None if e["f"] == "get" else inv["value"],
            output=e["value"] if e["f"] == "get" and e["type"] == "ok" else None,
            call=inv["time"], ret=e["time"] if e["type"] == "ok" else operation.END_OF_TIME,
            status=e["type"], key=e["key"], node=e["node"], complete_index=e["index"],
        ))
    for inv in open_ops.values():  # never answered: unknown
        ops.append(operation.Operation(
            index=inv["index"], process=inv["process"], f=F[inv["f"]],
            value=None if inv["f"] == "get" else inv["value"], output=None, call=inv["time"],
            ret=operation.END_OF_TIME, status="info", key=inv["key"], node=inv["node"]))
    return ops


def verdict(cfg: SimConfig, seed: int, faults: int):
    result = run(cfg, seed, random_schedule(random.Random(seed), cfg, faults))
    return result, linearizability.check(operations(result.history), models.KeyedCasRegister(), 10)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_checker_finds_correct_simulated_runs_linearizable(seed):
    result, checked = verdict(SimConfig(duration=1500, keys=3), seed, 10)
    assert result.ok, result.violations
    assert checked["valid"] is True, checked


def test_the_checker_finds_a_stale_read_run_not_linearizable():
    cfg = SimConfig(duration=1500, keys=3, bugs=frozenset({"stale-read"}))
    for seed in range(40):
        result, checked = verdict(cfg, seed, 10)
        if not result.ok:
            assert checked["valid"] is False, (result.violations, checked)
            return
    pytest.fail("no stale read in 40 runs")
