"""Must show (issue 7): a schedule found by the hypothesis strategy against a deliberately buggy raftkv shrinks to
a handful of faults and replays to the same anomaly.

Every candidate schedule is a real Docker run. CI runs a bounded form (at most 8 runs of schedules of at most
3 short faults, a few minutes); the full demo (24 runs of up to 6 faults) runs when asked:

    SPLITBRAIN_SHRINK_DEMO=1 .venv/bin/pytest -m docker tests/test_strategies_docker.py -s

It prints each run's verdict, the minimal schedule and the replay's verdict.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
from hypothesis import find, settings

from harness.pytest_plugin import run_schedule
from harness.spec import TestSpec
from nemesis.strategies import describe, fault_schedules, schedule_to_yaml

pytestmark = pytest.mark.docker

NODES = ["n1", "n2", "n3"]
DEMO = bool(os.environ.get("SPLITBRAIN_SHRINK_DEMO"))
# Docker runs at most; after it every candidate counts as passing, so shrinking stops.
BUDGET = 24 if DEMO else 8
SCHEDULES = (dict(max_faults=6, max_duration=5.0, max_gap=2.0, max_examples=12) if DEMO
             else dict(max_faults=3, max_duration=3.0, max_gap=1.0, max_examples=6))


def failing_checkers(result) -> set[str]:
    return {name for name, r in (result.results.get("checkers") or {}).items() if r.get("valid") is False}


def test_a_failing_schedule_against_ack_before_replicate_shrinks_and_replays(tmp_path):
    # ack-before-replicate loses acknowledged adds only when a leader loses its followers (a partition or a
    # crash at the wrong moment), never without faults: so what the schedule shrinks to is the fault that matters.
    spec = TestSpec(nodes=3, workload="set", bugs=("ack-before-replicate",), time_limit=2, warmup=2,
                    concurrency=6, rate=100, seed=7, test="shrink-ack-before-replicate", store=str(tmp_path / "store"))
    runs: list = []
    seen: dict[str, bool] = {}  # a schedule's first verdict: hypothesis replays examples, a cluster's timing varies

    def breaks(schedule) -> bool:
        key = schedule_to_yaml(schedule)
        if key in seen:
            return seen[key]
        if len(runs) >= BUDGET:
            return False
        result = run_schedule(dataclasses.replace(spec), schedule)
        runs.append(result)
        seen[key] = result.valid is False
        faults = sum(1 for op in schedule) // 2
        print(f"run {len(runs):2}: {faults} faults -> {result.valid} {sorted(failing_checkers(result))}", flush=True)
        return seen[key]

    bounds = dict(SCHEDULES)
    examples = bounds.pop("max_examples")
    strategy = fault_schedules(NODES, families=("partition", "kill"), min_faults=1, **bounds)
    minimal = find(strategy, breaks, settings=settings(max_examples=examples, database=None, deadline=None,
                                                       derandomize=True))
    first = next(r for r in runs if r.valid is False)
    print(f"first failing schedule: {len(first.schedule) // 2} faults\n{describe(first.schedule)}")
    print(f"shrunk to {len(minimal) // 2} faults after {len(runs)} runs:\n{describe(minimal)}")
    assert len(minimal) // 2 <= min(3, len(first.schedule) // 2)  # a handful of faults, no more than it began with

    # Replay from the seed: the same schedule and seed on a fresh cluster. Timing still varies between runs
    # of a real cluster, so up to three tries; the output says how many it took.
    shrunk_run = next(r for r in reversed(runs) if r.schedule == minimal and r.valid is False)
    for attempt in range(1, 4):
        replay = run_schedule(dataclasses.replace(spec), minimal)
        print(f"replay {attempt}: {replay.valid} {sorted(failing_checkers(replay))}", flush=True)
        if replay.valid is False:
            break
    print(replay.explain())
    assert replay.valid is False
    assert failing_checkers(replay) & failing_checkers(shrunk_run)  # the same checker finds it again
