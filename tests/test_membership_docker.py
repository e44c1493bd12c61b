"""The membership family in Docker: a voter removed and taken back (learner, then promoted), then the leader
removed and taken back, under a register workload; every change verified through the nodes' /membership, the
heal back to all four voters, and the history valid.

Marked docker (scripts/test runs it). The run is cleaned up by the `store` fixture of test_run_docker.
"""

from __future__ import annotations

import json

import pytest
import yaml
from test_run_docker import _splitbrain, store  # noqa: F401  (store is a fixture)

from history.events import read_history

pytestmark = pytest.mark.docker

SCHEDULE = [
    {"at": 2.0, "fault": "membership", "f": "remove-member", "nodes": ["n2"]},
    {"at": 6.0, "fault": "membership", "f": "add-learner", "nodes": ["n2"]},
    {"at": 8.0, "fault": "membership", "f": "promote-member", "nodes": ["n2"]},
    {"at": 11.0, "fault": "membership", "f": "remove-member", "nodes": ["leader"]},
    {"at": 15.0, "fault": "membership", "stop": True},
]


def test_a_remove_add_promote_cycle_and_a_removed_leader_keep_the_history_valid(store, tmp_path):  # noqa: F811
    schedule = tmp_path / "schedule.yaml"
    schedule.write_text(yaml.safe_dump(SCHEDULE))
    proc = _splitbrain("--target", "raftkv", "--nodes", "4", "--workload", "register", "--nemesis", "membership",
                       "--schedule", str(schedule), "--time-limit", "20", "--concurrency", "8", "--rate", "150",
                       "--seed", "4", "--warmup", "2", "--store", str(store), "--quiet")
    out, err = proc.communicate(timeout=300)
    run = (store / "latest").resolve()
    results = json.loads((run / "results.json").read_text())
    done = [e for e in read_history(run / "history.jsonl").nemesis_events() if e.type == "info"]
    by_f = {}
    for e in done:
        by_f.setdefault(e.f, []).append(e)
    [removed] = by_f["remove-member"][0].value
    assert removed == "n2" and by_f["remove-member"][0].extra["evidence"]["n2"]["verified"]
    assert by_f["add-learner"][0].value == ["n2"] and by_f["promote-member"][0].value == ["n2"]
    [leader] = by_f["remove-member"][1].value
    ev = by_f["remove-member"][1].extra["evidence"][leader]
    assert ev["verified"] and leader not in ev["config"]["voters"], ev
    assert by_f["readd-member"][0].value == [leader], by_f["readd-member"][0].extra
    # Taken back during the run, so the final heal had nothing of the family's to undo.
    [heal] = by_f["heal"]
    assert "readd-member" not in heal.extra["evidence"], heal.extra["evidence"]
    assert proc.returncode == 0 and results["valid"] is True, out + err
