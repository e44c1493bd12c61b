"""The impostor fault on Docker: a rogue container on the run's network, followed by no-peer-auth and by nobody
else, and removed with its run by teardown and by the reaper."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from harness.labels import OWNER_LABEL, ROGUE_LABEL, RUN_LABEL
from harness.pytest_plugin import run_schedule
from harness.spec import spec_from_mapping

pytestmark = pytest.mark.docker

SCHEDULE = [{"at": 1.0, "fault": "impostor", "claim": "n2", "key": "wrong", "duration": 5.0}]


def containers(*labels: str) -> int:
    import docker

    return len(docker.from_env().containers.list(all=True, sparse=True, filters={"label": list(labels)}))


def run(tmp_path, bugs: list[str]):
    spec = spec_from_mapping({"target": "raftkv", "nodes": 3, "time_limit": 8, "warmup": 2, "concurrency": 6,
                              "rate": 100, "bugs": bugs, "seed": 3, "store": str(tmp_path),
                              "test": "impostor-" + ("-".join(bugs) or "correct")}, "test").resolve()
    return run_schedule(spec, SCHEDULE)


def test_the_correct_store_is_not_moved_by_an_impostor_and_the_rogue_goes_with_the_run(tmp_path):
    result = run(tmp_path, [])
    result.assert_valid()
    [start] = [e for e in result.history.events
               if e.process == "nemesis" and e.type == "info" and e.f == "start-impostor"]
    assert start.extra["evidence"]["reached"] == {"n1": "open", "n2": "open", "n3": "open"}
    assert start.value["claim"] == "n2" and start.extra["fault"]["impostor"]["term"] >= 1_000_000
    [log] = (result.run_dir / "logs").glob("rogue-impostor-*.log")
    assert "impostor claiming n2" in log.read_text()
    assert containers(f"{RUN_LABEL}={result.results['run_id']}") == 0


def test_no_peer_auth_follows_the_impostor_and_is_caught(tmp_path):
    result = run(tmp_path, ["no-peer-auth"])
    result.assert_anomaly()
    assert any("followed an impostor without the cluster key (claiming to be n2" in s for s in result.sentences)
    assert containers(f"{RUN_LABEL}={result.results['run_id']}") == 0


def test_the_reaper_removes_a_rogue_when_the_harness_is_sigkilled(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", "--nodes", "3", "--nemesis", "impostor", "--time-limit", "60",
         "--nemesis-interval", "1", "--seed", "1", "--store", str(tmp_path), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    owner = f"{OWNER_LABEL}={socket.gethostname()}:{proc.pid}"
    try:
        deadline = time.monotonic() + 120
        while containers(ROGUE_LABEL, owner) == 0 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert containers(ROGUE_LABEL, owner) == 1, "the run started its impostor"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    killed = time.monotonic()
    while containers(RUN_LABEL, owner):
        assert time.monotonic() - killed < 10, "the run's containers outlived its harness by 10 s"
        time.sleep(0.2)
