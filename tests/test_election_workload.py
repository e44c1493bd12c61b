"""The election workload's parts without Docker: the resource's fencing, the resource served over HTTP into a
history, a candidate's journal across restarts, and the settings a run refuses before anything starts."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from harness.election import ResourceServer
from history.events import HistoryWriter, read_history
from workloads.base import make_workload
from workloads.election import Resource

REPO = Path(__file__).resolve().parent.parent


def test_a_fenced_resource_rejects_only_tokens_below_the_highest_it_accepted():
    r = Resource(fenced=True)
    assert [r.decide(t) for t in (3, 3, 5, 4, 5, 6)] == [(True, None), (True, 3), (True, 3), (False, 5),
                                                           (True, 5), (True, 5)]
    assert (r.accepted, r.rejected, r.highest) == (5, 1, 6)


def test_an_unfenced_resource_accepts_everything_and_still_tracks_the_highest():
    r = Resource(fenced=False)
    assert [ok for ok, _ in (r.decide(t) for t in (5, 2, 7, 1))] == [True, True, True, True]
    assert r.highest == 7 and r.rejected == 0


def test_the_served_resource_writes_each_decision_into_the_history(tmp_path):
    path = tmp_path / "history.jsonl"
    history = HistoryWriter(path)
    server = ResourceServer(fenced=True)
    server.history = history
    url = server.start("127.0.0.1")
    try:
        answers = []
        for cand, token in (("c1", 4), ("c2", 5), ("c1", 4)):
            req = urllib.request.Request(url + "/write", data=json.dumps({"candidate": cand, "token": token}).encode(),
                                         method="POST")
            with urllib.request.urlopen(req, timeout=5) as resp:
                answers.append(json.loads(resp.read())["result"])
    finally:
        server.stop()
        history.close()
    assert answers == ["accepted", "accepted", "rejected"]
    ops = read_history(path).client_operations()
    assert [(o.f, o.node, o.value["token"], o.status) for o in ops] == [
        ("work", "c1", 4, "ok"), ("work", "c2", 5, "ok"), ("work", "c1", 4, "fail")]
    assert ops[2].value["highest"] == 5 and ops[2].value["fenced"] is True


def test_a_restarted_candidate_continues_its_journal_as_a_new_incarnation(tmp_path):
    from targets.candidates.candidate import Journal

    j = Journal(str(tmp_path / "journal.jsonl"), "c1")
    j.record("acquire", "invoke", {})
    j.record("acquire", "info", {"error": "timeout"})  # an unknown outcome: the next process is another
    assert j.process == "c1.1.1"
    again = Journal(str(tmp_path / "journal.jsonl"), "c1")  # after a kill: same disk, next incarnation
    assert again.process == "c1.2"
    records = [json.loads(x) for x in again.since(0)]
    assert [r["process"] for r in records] == ["c1.1", "c1.1", "c1.1", "c1.1", "c1.2", "c1.2"]
    assert all(isinstance(r["value"]["at"], int) and isinstance(r["value"]["local"], float) for r in records)
    with open(tmp_path / "journal.jsonl", "a") as f:
        f.write('{"type": "invoke", "f": "acq')  # a kill in the middle of a write
    third = Journal(str(tmp_path / "journal.jsonl"), "c1")
    assert third.process == "c1.3" and len(third.since(0)) == 8
    assert all(json.loads(line) for line in open(tmp_path / "journal.jsonl").read().splitlines()[-2:])


def test_the_workload_is_registered_with_its_checker():
    w = make_workload("election", 1, recipe="etcd-lock", fencing="on", candidates=4, ttl=3.0, keys=9)
    assert (w.recipe, w.fencing, w.candidates, w.ttl) == ("etcd-lock", "on", 4, 3.0)
    assert [c.name for c in w.checkers()] == ["mutual-exclusion"]


@pytest.mark.parametrize("args, line", [
    (["--recipe", "etcd-lok"], "unknown recipe 'etcd-lok' (did you mean 'etcd-lock'?)"),
    (["--recipe", "etcd-lock", "--fencing", "maybe"], "fencing: expected on or off, got 'maybe'"),
    (["--recipe", "etcd-lock", "--target", "zookeeper"], "recipe etcd-lock runs against target etcd, not zookeeper"),
    (["--recipe", "zk-lock", "--nemesis", "loss"], "loss: an election run's nemesis acts on the candidates"),
    (["--recipe", "zk-lock", "--candidates", "1"], "candidates must be between 2 and 6, got 1"),
    ([], "the election workload needs --recipe"),
])
def test_bad_election_settings_are_one_line_and_exit_2(args, line, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--workload", "election", *args,
                           "--store", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and line in proc.stderr, proc.stderr
    assert not any(tmp_path.iterdir())  # refused before anything started


def test_a_resource_that_cannot_listen_is_one_infrastructure_line():
    from harness.cluster import ClusterError

    with pytest.raises(ClusterError, match="cannot listen on the run network's gateway 192.0.2.1"):
        ResourceServer(fenced=False).start("192.0.2.1")  # TEST-NET-1: never an address of this host
