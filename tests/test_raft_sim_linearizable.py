"""Cross-check: the simulator's histories, in the harness's format, go through the
project's history reader and linearizability checker.

The simulator's own read check is a simple per-key rule; the full checker must
agree that correct runs are linearizable and that a stale-read run is not.
"""

from __future__ import annotations

import json
import random

import pytest

from checkers import linearizability, models
from history import events as history_events
from targets.raftkv.sim import SimConfig, contract_history, random_schedule, run


def checked(result) -> dict:
    text = "\n".join(json.dumps(e) for e in contract_history(result.history))
    events = history_events.parse_events(text)
    assert history_events.validate(events) == []
    return linearizability.check(history_events.pair_operations(events), models.KeyedCasRegister(), 10)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_checker_finds_correct_simulated_runs_linearizable(seed):
    cfg = SimConfig(duration=1500, keys=3)
    result = run(cfg, seed, random_schedule(random.Random(seed), cfg, 10))
    assert result.ok, result.violations
    assert checked(result)["valid"] is True


def test_the_checker_finds_a_stale_read_run_not_linearizable():
    cfg = SimConfig(duration=1500, keys=3, bugs=frozenset({"stale-read"}))
    for seed in range(40):
        result = run(cfg, seed, random_schedule(random.Random(seed), cfg, 10))
        # The simulator judges reads by the order the cluster applied writes, which the
        # history alone cannot show (two concurrent puts): it may see more, never less.
        if checked(result)["valid"] is False:
            assert not result.ok and result.violations[0].kind == "stale-read", seed
            return
    pytest.fail("no run the checker finds not linearizable in 40")
