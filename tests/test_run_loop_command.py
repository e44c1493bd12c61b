"""`splitbrain run`'s end: the run folder, results.json, the summary and the exit code, over the in-memory cluster."""

from __future__ import annotations

import io
import json
import os

import yaml

from harness.commands.run import execute
from harness.memory import MemoryCluster, memory_parts
from harness.spec import TestSpec


def spec(tmp_path, **kw) -> TestSpec:
    base = dict(target="raftkv", nodes=3, workload="set", nemesis=("kill",), time_limit=1.0, concurrency=4,
                rate=300, seed=11, nemesis_interval=0.25, warmup=0.1, recovery_limit=2, op_timeout=0.2,
                store=str(tmp_path / "store"))
    base.update(kw)
    return TestSpec(**base).resolve()


def test_a_valid_run_writes_its_folder_and_exits_0(tmp_path):
    out = io.StringIO()
    s = spec(tmp_path)
    code = execute(s, None, quiet=True, out=out, parts=memory_parts(MemoryCluster()))
    assert code == 0, out.getvalue()
    latest = tmp_path / "store" / "latest"
    assert latest.is_symlink()
    run = latest.resolve()
    assert run.parent.name == s.test
    assert yaml.safe_load((run / "spec.yaml").read_text())["seed"] == 11
    results = json.loads((run / "results.json").read_text())
    assert results["valid"] is True and results["model"] == "set" and results["exit_code"] == 0
    assert results["checkers"]["set"]["valid"] is True
    assert results["availability"]["during_faults"] is not None
    assert 0.5 < results["availability"]["served_seconds"] <= 1.0
    quiet = results["availability"]["not_leader_outside_faults"]
    assert 0 < quiet["ops"] < results["stats"]["ops"] and quiet["share"] == round(quiet["not_leader"] / quiet["ops"], 4)
    assert results["stats"]["ok"] > 0 and results["run"]["recovered"] is True
    assert (run / "logs" / "n1.log").exists()
    text = out.getvalue()
    assert "verdict          valid (exit 0)" in text and str(run) in text and "report.html" in text
    assert f"of the {quiet['ops']} ops outside fault windows ({quiet['not_leader']} refused)" in text
    assert (run / "report.html").exists()  # written by reports/ at the end of every run


def test_lost_writes_exit_1_and_say_when_they_were_found(tmp_path):
    out = io.StringIO()
    code = execute(spec(tmp_path), None, quiet=True, out=out, parts=memory_parts(MemoryCluster(lose_writes=True)))
    assert code == 1
    results = json.loads((tmp_path / "store" / "latest" / "results.json").read_text())
    assert results["checkers"]["set"]["lost"]
    assert "set" in results["anomalies_found_at"]
    assert "ANOMALY" in out.getvalue() and "lost" in out.getvalue()


def test_a_cluster_that_cannot_come_up_is_one_line_and_exit_2(tmp_path, capsys):
    class Broken(MemoryCluster):
        def up(self):
            raise RuntimeError("no docker daemon")

    cluster = Broken()
    out = io.StringIO()
    code = execute(spec(tmp_path), None, quiet=True, out=out, parts=memory_parts(cluster))
    err = capsys.readouterr().err
    assert code == 2 and out.getvalue() == ""
    assert err == "splitbrain run: the cluster did not come up: RuntimeError: no docker daemon\n"
    assert cluster.torn_down == 1
    results = json.loads((tmp_path / "store" / "latest" / "results.json").read_text())
    assert results["status"] == "infra-error" and results["exit_code"] == 2


def test_two_runs_get_two_folders_and_latest_moves(tmp_path):
    execute(spec(tmp_path), None, quiet=True, out=io.StringIO(), parts=memory_parts(MemoryCluster()))
    first = (tmp_path / "store" / "latest").resolve()
    execute(spec(tmp_path), None, quiet=True, out=io.StringIO(), parts=memory_parts(MemoryCluster()))
    second = (tmp_path / "store" / "latest").resolve()
    assert first != second and first.exists() and second.exists()
    assert os.readlink(tmp_path / "store" / "latest").startswith(spec(tmp_path).test)


def test_a_split_brain_is_found_when_the_second_leader_of_the_term_is_first_seen():
    from harness.commands.run import anomaly_times

    two = {"type": "two-leaders-one-term", "term": 2,
           "observations": [{"node": "n3", "term": 2, "start": 10e9, "end": 11e9},
                            {"node": "n5", "term": 2, "start": 13e9, "end": 22e9}]}
    dual = {"type": "dual-serving", "start": 30e9, "end": 31e9}
    assert anomaly_times({"split-brain": {"valid": False, "anomalies": [two]}}) == {"split-brain": 13.0}
    assert anomaly_times({"split-brain": {"valid": False, "anomalies": [dual, two]}}) == {"split-brain": 13.0}
    assert anomaly_times({"split-brain": {"valid": True, "anomalies": []}}) == {}


def test_the_not_leader_share_counts_only_ops_invoked_outside_fault_windows():
    from harness.commands.run import not_leader_outside_faults
    from history.events import history_from_events, parse_events

    ms = 1_000_000
    lines = [
        {"type": "invoke", "process": 0, "f": "write", "key": "k", "value": 1, "time": 0},
        {"type": "fail", "process": 0, "f": "write", "key": "k", "value": 1, "time": 1 * ms, "error": "not-leader"},
        {"type": "invoke", "process": 1, "f": "write", "key": "k", "value": 2, "time": 2 * ms},
        {"type": "ok", "process": 1, "f": "write", "key": "k", "value": 2, "time": 3 * ms},
        {"type": "invoke", "process": "nemesis", "f": "start-partition", "value": {"grudge": "halves"}, "time": 10 * ms},
        {"type": "info", "process": "nemesis", "f": "start-partition", "value": None, "time": 11 * ms},
        # Inside the partition's window: not counted, refused or not.
        {"type": "invoke", "process": 0, "f": "write", "key": "k", "value": 3, "time": 12 * ms},
        {"type": "fail", "process": 0, "f": "write", "key": "k", "value": 3, "time": 13 * ms, "error": "not-leader"},
        {"type": "invoke", "process": "nemesis", "f": "stop-partition", "value": None, "time": 20 * ms},
        {"type": "info", "process": "nemesis", "f": "stop-partition", "value": None, "time": 21 * ms},
        {"type": "invoke", "process": 2, "f": "read", "key": "s", "value": None, "time": 30 * ms},
        {"type": "fail", "process": 2, "f": "read", "key": "s", "value": None, "time": 31 * ms,
         "error": "element 3: not-leader"},
        {"type": "invoke", "process": 1, "f": "cas", "key": "k", "value": [5, 6], "time": 32 * ms},
        {"type": "fail", "process": 1, "f": "cas", "key": "k", "value": [5, 6], "time": 33 * ms,
         "error": "cas-mismatch"},
    ]
    text = "\n".join(json.dumps({"index": i, **e}) for i, e in enumerate(lines))
    history = history_from_events(parse_events(text))
    assert not_leader_outside_faults(history) == {"ops": 4, "not_leader": 2, "share": 0.5}
    assert not_leader_outside_faults(None) is None
