"""Shrinking fault schedules (harness.shrink): ddmin on its own, episodes, and shrink_run with a fake run.

The fake stands in for the harness's Docker run (the point here is the search, not a store): it fails
exactly when the schedule still holds certain episodes, as a deterministic bug would."""

from __future__ import annotations

import dataclasses
import json

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.shrink import ddmin, episodes, schedule_of, shrink_run
from harness.spec import TestSpec


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40).flatmap(lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1), min_size=1,
                                                                          max_size=min(n, 4)))))
def test_ddmin_finds_exactly_the_culprits_of_a_monotone_failure(case):
    n, culprits = case
    calls = []

    def fails(subset):
        calls.append(subset)
        return culprits <= set(subset)

    found, used = ddmin(list(range(n)), fails, budget=10_000)
    assert set(found) == culprits
    assert used == len({tuple(c) for c in calls}) == len(calls)  # every candidate tested once


def test_ddmin_stops_at_its_budget_with_a_failing_set():
    found, used = ddmin(list(range(64)), lambda s: 17 in s, budget=3)
    assert used == 3 and 17 in found and len(found) < 64


def _entries():
    return [
        {"at": 2.0, "family": "kill", "f": "kill", "value": {"nodes": ["n1"]}},
        {"at": 2.25, "family": "kill", "f": "start", "value": {"nodes": ["n1"]}},  # a bounce
        {"at": 4.0, "family": "partition", "f": "start-partition", "value": {"grudge": "halves", "seed": 1}},
        {"at": 6.0, "family": "kill", "f": "kill", "value": {"nodes": ["leader"]}},
        {"at": 8.0, "family": "partition", "f": "stop-partition", "value": None},
        {"at": 9.0, "family": "pause", "f": "resume", "value": {"nodes": ["n2"]}},  # a stop with nothing to stop
        {"at": 10.0, "family": "kill", "f": "start", "value": {"nodes": ["leader"]}},
    ]


def test_episodes_pair_each_start_with_the_stop_that_ended_it():
    eps = episodes(_entries())
    assert [[e["at"] for e in ep] for ep in eps] == [[2.0, 2.25], [4.0, 8.0], [6.0, 10.0]]
    assert schedule_of([eps[2], eps[0]]) == [_entries()[i] for i in (0, 1, 3, 6)]


def _failed_run(tmp_path, entries):
    run = tmp_path / "run"
    run.mkdir()
    (run / "schedule.yaml").write_text(yaml.safe_dump(entries))
    (run / "results.json").write_text(json.dumps({"checkers": {"linearizability": {"valid": False},
                                                               "split-brain": {"valid": True}}}))
    (run / "spec.yaml").write_text(TestSpec(nemesis=("kill", "partition", "pause"), seed=3, test="t").to_yaml())
    return run


def test_shrink_run_keeps_what_still_fails_and_writes_a_spec_that_replays_it(tmp_path):
    run = _failed_run(tmp_path, _entries())
    played = []

    def fake_run(spec):  # fails while the partition episode and the leader kill are both in
        played.append(spec)
        ats = {e["at"] for e in spec.schedule}
        bad = {4.0, 6.0} <= ats
        return {"checkers": {"linearizability": {"valid": not bad}}}, str(tmp_path / f"try{len(played)}")

    spec = TestSpec(nemesis=("kill", "partition", "pause"), seed=3, test="t")
    out = shrink_run(run, spec, fake_run, budget=10)
    assert out["reproduced"] and (out["episodes"], out["shrunk_episodes"]) == (3, 2)
    assert [e["at"] for e in out["schedule"]] == [4.0, 6.0, 8.0, 10.0]
    assert all(s.seed == 3 and s.store == str(run / "shrink") for s in played)
    shrunk = yaml.safe_load(out["spec"].read_text())
    assert shrunk["schedule"] == out["schedule"] and shrunk["seed"] == 3
    assert len(out["tries"]) == len(played) <= 10


def test_a_failure_of_another_checker_does_not_count(tmp_path):
    run = _failed_run(tmp_path, _entries())

    def fake_run(spec):
        return {"checkers": {"split-brain": {"valid": False}, "linearizability": {"valid": True}}}, "x"

    out = shrink_run(run, dataclasses.replace(TestSpec(), nemesis=("kill", "partition", "pause")), fake_run,
                     attempts=2)
    assert not out["reproduced"] and len(out["tries"]) == 2 and out["spec"] is None


def test_the_command_refuses_a_valid_run_and_a_folder_that_is_not_a_run(tmp_path, capsys):
    run = _failed_run(tmp_path, _entries())
    (run / "results.json").write_text(json.dumps({"checkers": {"linearizability": {"valid": True}}}))
    assert main(["shrink", str(run)]) == 2
    assert "nothing to shrink" in capsys.readouterr().err
    assert main(["shrink", str(tmp_path)]) == 2
    assert "no spec.yaml" in capsys.readouterr().err
