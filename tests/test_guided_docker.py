"""A guided run in Docker, and its replay: the guided planner decides from a live cluster, and the run
folder's replay.yaml plays exactly the ops it chose (what its seed alone cannot do). Marked docker; both
runs are cleaned by the store fixture."""

from __future__ import annotations

import json

import pytest
import yaml
from test_run_docker import _splitbrain, store  # noqa: F401  (store is a fixture: its runs are cleaned)

from history.events import read_history

pytestmark = pytest.mark.docker


def _run(store, *args):  # noqa: F811
    proc = _splitbrain("--nodes", "3", "--time-limit", "12", "--nemesis-interval", "2", "--warmup", "2",
                       "--store", str(store), "--quiet", *args)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode in (0, 1), out + err
    return (store / "latest").resolve(), out


def _nemesis_ops(run):
    return [(e.f, e.value) for e in read_history(run / "history.jsonl").nemesis_events()
            if e.type == "invoke" and e.f != "heal"]


def test_a_guided_run_records_its_choices_and_its_replay_plays_them_again(store):  # noqa: F811
    run, out = _run(store, "--nemesis", "partition,kill", "--schedule", "guided", "--seed", "11")
    decisions = json.loads((run / "guided.json").read_text())
    played = yaml.safe_load((run / "schedule.yaml").read_text())
    assert len(decisions) == 5  # a decision every 2 s of 12 s of faults
    assert all(set(d) == {"at", "state", "active", "reward_of_last", "action"} for d in decisions)
    assert played and {p["family"] for p in played} <= {"partition", "kill"}
    replay = run / "replay.yaml"
    assert f"--spec {replay}" in out
    assert yaml.safe_load(replay.read_text())["schedule"] == played
    first = _nemesis_ops(run)
    assert len(first) == len(played)

    again, _ = _run(store, "--spec", str(replay))
    assert again != run and not (again / "guided.json").exists()
    assert yaml.safe_load((again / "schedule.yaml").read_text()) == played
    # The same ops in the same order; a kill aimed at "leader" may find another node leading this time.
    assert [f for f, _ in _nemesis_ops(again)] == [f for f, _ in first]
