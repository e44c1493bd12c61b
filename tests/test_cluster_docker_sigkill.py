"""After SIGKILL of the harness mid-run, its reaper removes every container and the network of the run within
seconds, with no `splitbrain clean`; and with the reaper off, `clean` removes what was left."""

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


def run_id_of(pid: int) -> str:
    import docker

    owner = f"{OWNER_LABEL}={socket.gethostname()}:{pid}"
    [net] = docker.from_env().networks.list(filters={"label": [RUN_LABEL, owner]})
    return net.attrs["Labels"][RUN_LABEL]


def _killed_mid_run(tmp_path, env=None) -> int:
    """Start a run, SIGKILL its harness in the fault phase; the harness's pid."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", "--nodes", "3", "--nemesis", "partition,kill",
         "--time-limit", "60", "--nemesis-interval", "2", "--seed", "1", "--store", str(tmp_path), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})},
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
    return proc.pid


def _history_checks(tmp_path) -> None:
    histories = list(tmp_path.rglob("history.jsonl"))
    assert histories and histories[0].stat().st_size > 0, "the partial history is on disk"
    check = subprocess.run([sys.executable, "-m", "harness.cli", "check", str(histories[0].parent)],
                           capture_output=True, text=True)
    assert check.returncode in (0, 3), check.stdout + check.stderr


def test_the_reaper_removes_a_sigkilled_harness_run_within_seconds(tmp_path):
    pid = _killed_mid_run(tmp_path)
    killed = time.monotonic()
    while owned_by(pid) != (0, 0):
        assert time.monotonic() - killed < 10, f"left 10 s after the kill: {owned_by(pid)}"
        time.sleep(0.2)
    print(f"reaped {time.monotonic() - killed:.1f} s after SIGKILL")
    _history_checks(tmp_path)


def test_clean_after_sigkill_of_a_harness_without_its_reaper_removes_everything_it_left(tmp_path):
    pid = _killed_mid_run(tmp_path, env={"SPLITBRAIN_REAPER": "0"})
    assert owned_by(pid) == (3, 1), "SIGKILL leaves the run's containers and network behind"
    # Only this run: a plain `clean` would also take what other test processes' dead runs left.
    out = subprocess.run([sys.executable, "-m", "harness.cli", "clean", "--run", run_id_of(pid)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert owned_by(pid) == (0, 0)
    _history_checks(tmp_path)
