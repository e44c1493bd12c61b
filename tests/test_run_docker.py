"""`splitbrain run` end to end against real raftkv containers: a short chaos test, and an interrupted one.

Marked docker: `pytest -m docker` (scripts/test runs it). Each test removes
any container or network its run left behind, also when it fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from history.events import read_history

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[1]


def _run_ids(store: Path) -> set[str]:
    """The run ids (container labels) of the runs recorded under store."""
    ids = set()
    for results in store.glob("*/*/results.json"):
        run_id = json.loads(results.read_text()).get("run_id")
        if run_id:
            ids.add(run_id)
    return ids


def _left_behind(run_id: str) -> int:
    import docker

    client = docker.from_env()
    label = {"label": f"splitbrain.run={run_id}"}
    return len(client.containers.list(all=True, filters=label)) + len(client.networks.list(filters=label))


@pytest.fixture
def store(tmp_path):
    """The test's store; afterwards its runs must have left no container or network.
    Only this test's runs are looked at or removed: other runs on the host are not ours."""
    from harness.cluster import clean

    root = tmp_path / "store"
    leftovers: list[str] = []
    try:
        yield root
        leftovers = [r for r in sorted(_run_ids(root)) if _left_behind(r)]
    finally:
        for run_id in _run_ids(root):
            clean(run_id)
    assert not leftovers, f"runs left containers or networks: {leftovers}"


def _splitbrain(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "run", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_a_short_chaos_run_is_recorded_checked_and_torn_down(store):
    proc = _splitbrain("--target", "raftkv", "--nodes", "3", "--workload", "register",
                       "--nemesis", "partition,kill", "--time-limit", "12", "--nemesis-interval", "2",
                       "--concurrency", "10", "--rate", "200", "--seed", "3", "--warmup", "2",
                       "--store", str(store), "--quiet")
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, out + err
    run = (store / "latest").resolve()
    results = json.loads((run / "results.json").read_text())
    assert results["valid"] is True and results["exit_code"] == 0
    assert set(results["checkers"]) >= {"linearizability", "split-brain"}
    assert results["run"]["recovered"] is True
    history = read_history(run / "history.jsonl")
    assert len(history.client_operations()) > 500
    assert {e.f for e in history.nemesis_events()} & {"start-partition", "kill"}
    assert history.observations()
    assert sorted(p.name for p in (run / "logs").iterdir()) == ["n1.log", "n2.log", "n3.log"]
    assert "seed: 3" in (run / "spec.yaml").read_text()
    assert "verdict          valid" in out and str(run.name) in out


def test_sigterm_mid_run_tears_down_and_leaves_a_checkable_history(store):
    proc = _splitbrain("--nodes", "3", "--nemesis", "kill", "--time-limit", "120", "--nemesis-interval", "2",
                       "--seed", "5", "--store", str(store))
    try:
        deadline = time.monotonic() + 120
        history = None
        while time.monotonic() < deadline:
            found = list(store.glob("*/*/history.jsonl"))
            if found and found[0].stat().st_size > 20_000:
                history = found[0]
                break
            time.sleep(0.5)
        assert history is not None, "the run never got going"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == 2, out + err
    assert "interrupted      by SIGTERM" in out
    read_history(history)  # the partial history keeps the contract
    check = subprocess.run([sys.executable, "-m", "harness.cli", "check", str(history.parent)], cwd=REPO,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode in (0, 3), check.stdout + check.stderr
