"""`splitbrain bench election` against real raftkv containers: a tiny bench, and one stopped by SIGTERM.

Marked docker. Each test looks only at the containers and networks its own
bench process made (the owner label carries that process's pid, so benches
and runs of others on the same host do not matter) and removes them whatever
happens.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[1]


def _runs_of(pid: int) -> set[str]:
    """Run ids of the containers and networks made by the harness process `pid`."""
    import docker

    from harness.cluster import OWNER_LABEL, RUN_LABEL

    client = docker.from_env()
    selector = {"label": f"{OWNER_LABEL}={socket.gethostname()}:{pid}"}
    runs = {c.labels.get(RUN_LABEL) for c in client.containers.list(all=True, filters=selector)}
    runs |= {n.attrs.get("Labels", {}).get(RUN_LABEL) for n in client.networks.list(filters=selector)}
    return {r for r in runs if r}


def _bench(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "bench", "election", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _clean_up(proc: subprocess.Popen) -> set[str]:
    """Kill the bench if it still runs; the runs it left behind (then removed)."""
    from harness.cluster import clean

    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)
    left = _runs_of(proc.pid)
    for run_id in left:
        clean(run_id)
    return left


def test_a_tiny_bench_measures_every_trial_writes_its_folder_and_leaves_nothing(tmp_path):
    store = tmp_path / "store"
    proc = _bench("--nodes", "3", "--ranges", "150-300", "--trials", "3", "--seed", "5", "--store", str(store))
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        left = _clean_up(proc)
    assert proc.returncode == 0, out + err
    assert not left, f"the bench left runs behind: {sorted(left)}"
    assert "[150-300 ms] trial 3/3" in err  # progress: range, trial i/N, its downtime
    assert out.startswith("range ms") and "150-300" in out and "~90 to ~600 ms" in out
    folder = (store / "bench-election" / "latest").resolve()
    results = json.loads((folder / "results.json").read_text())
    assert results["status"] == "complete"
    (r,) = results["ranges"]
    assert r["error"] is None and r["heartbeat_ms"] == 75 and len(r["trials"]) == 3
    assert r["summary"]["trials"] == 3
    for t in r["trials"]:
        if t["downtime_ms"] is not None:  # a timeout is allowed on a loaded host, and is reported
            # no leader can be elected before the survivors' 150 ms timeout, counted from their
            # last heartbeat, at most one heartbeat (75 ms) before the kill
            assert t["downtime_ms"] >= 150 - 75, t
            assert t["new_term"] > t["old_term"] and t["new_leader"] != t["old_leader"]
    for name in ("table.txt", "cdf-150-300.svg", "cdf-all.svg"):
        assert (folder / name).exists()
    assert (folder / "logs" / "150-300" / "n1.log").exists()


def test_sigterm_mid_bench_tears_the_cluster_down_and_keeps_the_trials_so_far(tmp_path):
    store = tmp_path / "store"
    proc = _bench("--nodes", "3", "--ranges", "150-300", "--trials", "50", "--seed", "5", "--store", str(store))
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "trial 1/50" in line:
                proc.send_signal(signal.SIGTERM)
                break
        out, err = proc.communicate(timeout=120)
    finally:
        left = _clean_up(proc)
    assert proc.returncode == 2, out + err
    assert not left, f"the bench left runs behind: {sorted(left)}"
    results = json.loads(((store / "bench-election" / "latest") / "results.json").read_text())
    assert results["status"] == "interrupted"
    assert 1 <= len(results["ranges"][0]["trials"]) < 50


def test_a_compare_of_raftkv_and_etcd_counts_what_an_election_costs_and_the_writes_around_it(tmp_path):
    store = tmp_path / "store"
    proc = _bench("--compare", "raftkv,etcd", "--nodes", "3", "--trials", "2", "--seed", "5",
                  "--throughput-s", "0.5", "--store", str(store))
    try:
        out, err = proc.communicate(timeout=400)
    finally:
        left = _clean_up(proc)
    assert proc.returncode == 0, out + err
    assert not left, f"the bench left runs behind: {sorted(left)}"
    doc = json.loads(((store / "bench-election" / "latest") / "results.json").read_text())
    by = {t["target"]: t for t in doc["targets"]}
    assert set(by) == {"raftkv", "etcd"} and all(t["heartbeat_ms"] == 30 for t in by.values())
    for name, t in by.items():
        elected = [x for x in t["trials"] if x["acknowledged_ms"] is not None]
        assert elected, (name, t)
        for x in elected:
            assert x["writes_before_per_s"] > 0 and x["writes_after_per_s"] > 0, (name, x)
            assert x["fsyncs"] is not None and x["fsyncs"] >= 1, (name, x)  # a new term is persisted
        # raftkv counts its peer messages (votes, at least one each way); etcd 3.4 counts only bytes
        assert all((x["messages"] or 0) >= 2 for x in elected) if name == "raftkv" else \
            all(x["messages"] is None for x in elected)
    assert out.startswith("target") and "cdf-compare" not in out
    assert (store / "bench-election" / "latest" / "cdf-compare.svg").exists()
