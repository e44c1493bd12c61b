"""After SIGKILL of the harness mid-run, `splitbrain clean` leaves no labelled container or network."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from harness.cluster import OWNER_LABEL, RUN_LABEL

pytestmark = pytest.mark.docker


def owned_by(pid: int) -> tuple[int, int]:
    import docker

    client = docker.from_env()
    owner = f"{OWNER_LABEL}={socket.gethostname()}:{pid}"
    # sparse: no inspect of each listed container, which races a container removed in between
    # (the listing then fails with NotFound instead of counting one fewer).
    return (len(client.containers.list(all=True, sparse=True, filters={"label": [RUN_LABEL, owner]})),
            len(client.networks.list(filters={"label": [RUN_LABEL, owner]})))


def test_clean_after_sigkill_of_the_harness_removes_everything_it_left(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", "--nodes", "3", "--nemesis", "partition,kill",
         "--time-limit", "60", "--nemesis-interval", "2", "--seed", "1", "--store", str(tmp_path), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while owned_by(proc.pid)[0] < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert owned_by(proc.pid)[0] == 3, "the run brought its nodes up"
        time.sleep(6)  # into the fault phase
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert owned_by(proc.pid) == (3, 1), "SIGKILL leaves the run's containers and network behind"
    out = subprocess.run([sys.executable, "-m", "harness.cli", "clean"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert owned_by(proc.pid) == (0, 0)
    histories = list(tmp_path.rglob("history.jsonl"))
    assert histories and histories[0].stat().st_size > 0, "the partial history is on disk"
    check = subprocess.run([sys.executable, "-m", "harness.cli", "check", str(histories[0].parent)],
                           capture_output=True, text=True)
    assert check.returncode in (0, 3), check.stdout + check.stderr
