"""A 3-node raftkv cluster split over two Docker engines on this machine, under partitions and kills.

The second engine is a real dockerd of its own (scripts/second-engine: its own socket, data root, exec
root and bridge); the test starts it if it is not running and stops it again if it started it. The run
goes through `splitbrain run --docker-hosts`, so it covers what a user gets: the image sent to the second
engine without a registry, a network on each engine, nodes that reach each other across them, the
nemesis's partitions and kills verified across them, and nothing of the run left on either engine or in
the host's iptables afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cluster import RUN_LABEL

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "second-engine"


@pytest.fixture(scope="module")
def second_engine():
    was_running = subprocess.run([str(SCRIPT), "status"], capture_output=True, text=True).returncode == 0
    started = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, f"the second engine did not start: {started.stderr.strip()}"
    yield started.stdout.strip()
    if not was_running:
        subprocess.run([str(SCRIPT), "stop"], capture_output=True, timeout=60)


def run_label_count(url: str | None, run_id: str) -> int:
    import docker

    client = docker.DockerClient(base_url=url) if url else docker.from_env()
    selector = {"label": f"{RUN_LABEL}={run_id}"}
    return len(client.containers.list(all=True, sparse=True, filters=selector)) + len(
        client.networks.list(filters=selector))


def test_a_cluster_over_two_engines_elects_serves_and_is_partitioned_and_killed_across_them(second_engine, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--docker-hosts", f"default,{second_engine}", "--nodes", "3",
         "--nemesis", "partition,kill", "--time-limit", "16", "--nemesis-interval", "3", "--seed", "11",
         "--store", str(tmp_path)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    # n1 and n3 on the default engine, n2 on the second, each engine with a network of its own.
    serving = next(line for line in out.splitlines() if "nodes serving on" in line)
    assert "default 10.210." in serving and f"{second_engine} 10.210." in serving, serving
    run_id = serving.split("cluster ", 1)[1].split(":", 1)[0]

    [history] = tmp_path.rglob("history.jsonl")
    faults = [json.loads(line) for line in history.read_text().splitlines() if '"process": "nemesis"' in line]
    done_faults = [f for f in faults if f["type"] == "info" and f.get("evidence", {}).get("verified")]
    kinds = {f["f"] for f in done_faults}
    assert "kill" in kinds and "start-partition" in kinds, kinds
    # A partition cuts links that cross the engines (n2 is the only node on the second one).
    cuts = [f["evidence"].get("grudge") or {} for f in done_faults if f["f"] == "start-partition"]
    assert any("n2" in grudge or any("n2" in v for v in grudge.values()) for grudge in cuts), cuts
    results = json.loads(next(tmp_path.rglob("results.json")).read_text())
    assert results["valid"] is True

    assert run_label_count(None, run_id) == 0 and run_label_count(second_engine, run_id) == 0
    rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout + subprocess.run(
        ["iptables", "-t", "nat", "-S"], capture_output=True, text=True).stdout
    assert f"splitbrain:{run_id}" not in rules
