"""The ZooKeeper target against a real ZooKeeper 3.8 ensemble: start, client, probe, a kill, the clock, a short chaos run.

Marked docker (`pytest -m docker`). Each test removes only its own run's
containers and network (by run id), also when it fails. About two minutes.
"""

from __future__ import annotations

import time
import uuid

import pytest
from docker_cluster import client_ops, docker_cluster, settled
from test_run_docker import _splitbrain, store  # noqa: F401  (store is a fixture: its runs are cleaned)

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def cluster():
    with docker_cluster("zookeeper", timeout=150) as c:
        yield c


def ops(cluster, pairs: list[tuple[str, dict]], sync_reads: bool = False) -> list[dict]:
    return client_ops("zookeeper", cluster, pairs, timeout=10.0, sync_reads=sync_reads)


def test_the_ensemble_starts_with_one_leader_the_others_follow_in_its_epoch(cluster):
    probes = settled(cluster, timeout=90.0)  # one leader, named by all, one epoch: before any write
    leader = next(n for n, p in probes.items() if p["role"] == "leader")
    assert sorted(p["role"] for p in probes.values()) == ["follower", "follower", "leader"]
    assert probes[leader]["term"] >= 1
    walls = [p["wall_time"] for p in probes.values() if p["wall_time"] is not None]
    assert walls and all(abs(w - time.time()) < 5 for w in walls)  # the JVMs' clocks (Jetty's Date)
    assert "3.8.0" in cluster.node_log("n1")


def test_after_the_leader_is_killed_the_others_agree_on_a_new_epoch_with_no_write(cluster):
    """The term is the currentEpoch: followers take on the new epoch as they sync, while their
    zxids still name the old one (what `bench election` needs to see a settled cluster)."""
    before = settled(cluster, timeout=90.0)
    old = next(n for n, p in before.items() if p["role"] == "leader")
    cluster.kill(old)
    deadline = time.monotonic() + 60
    while True:
        probes = {n: cluster.probe(n) for n in cluster.node_ids if n != old}
        leaders = [n for n, p in probes.items() if p and p["role"] == "leader"]
        if (len(leaders) == 1 and all(p and p["leader"] == leaders[0] for p in probes.values())
                and len({p["term"] for p in probes.values()}) == 1):
            break
        assert time.monotonic() < deadline, f"no new leader agreed on: {probes}"
        time.sleep(0.2)
    assert probes[leaders[0]]["term"] > before[old]["term"]
    cluster.start(old)
    after = settled(cluster, timeout=90.0)
    assert after[old]["role"] == "follower" and after[old]["term"] == probes[leaders[0]]["term"]


def test_write_read_cas_and_a_cas_that_fails(cluster):
    key = f"k-{uuid.uuid4().hex[:6]}"
    got = ops(cluster, [
        ("n1", {"f": "read", "key": key, "value": None}),
        ("n1", {"f": "write", "key": key, "value": 1}),
        ("n2", {"f": "write", "key": key, "value": 2}),
        ("n3", {"f": "cas", "key": key, "value": [2, 3]}),
        ("n1", {"f": "cas", "key": key, "value": [2, 4]}),
        ("n2", {"f": "read", "key": key, "value": None}),
    ], sync_reads=True)
    assert [(o["type"], o["value"]) for o in got] == [
        ("ok", None), ("ok", 1), ("ok", 2), ("ok", [2, 3]), ("fail", None), ("ok", 3)]
    assert got[4]["error"] == "cas-mismatch"


def test_a_set_and_its_final_read(cluster):
    key = f"set-{uuid.uuid4().hex[:6]}"
    adds = [("n1", {"f": "add", "key": key, "value": v}) for v in range(100)]
    got = ops(cluster, adds + [("n3", {"f": "read", "key": key, "value": None})], sync_reads=True)
    assert {o["type"] for o in got[:-1]} == {"ok"}
    assert got[-1] == {"type": "ok", "value": list(range(100)), "error": None}


def test_a_killed_server_restarts_with_its_data_and_rejoins(cluster):
    leader = next(n for n, p in settled(cluster, timeout=90.0).items() if p["role"] == "leader")
    follower = next(n for n in cluster.node_ids if n != leader)
    key = f"kill-{uuid.uuid4().hex[:6]}"
    assert ops(cluster, [(leader, {"f": "write", "key": key, "value": 7})])[0]["type"] == "ok"
    before = cluster.probe(follower)["commit_index"]
    cluster.kill(follower)
    assert cluster.probe(follower) is None
    cluster.start(follower)
    after = settled(cluster, timeout=90.0)
    assert after[follower]["commit_index"] >= before
    assert ops(cluster, [(follower, {"f": "read", "key": key, "value": None})])[0]["value"] == 7
    rc, out = cluster.exec(follower, ["ls", f"{cluster.layout.data_dir}/version-2"])
    assert rc == 0 and any(name.startswith("log.") for name in out.split())


def test_libfaketime_reaches_the_running_jvm(cluster):
    """Why clock faults are allowed: the JVM's own clock (its Date header) follows the node's faketime file."""
    node = "n2"
    try:
        cluster.put_file(node, cluster.layout.faketime_file, b"-86400\n")
        deadline = time.monotonic() + 10
        while True:
            wall = (cluster.probe(node) or {}).get("wall_time")
            if wall is not None and abs(wall - (time.time() - 86400)) < 5:
                break
            assert time.monotonic() < deadline, f"the JVM's clock did not move: {wall} vs {time.time()}"
            time.sleep(0.3)
    finally:
        cluster.put_file(node, cluster.layout.faketime_file, b"+0\n")
    time.sleep(3)
    assert abs(cluster.probe(node)["wall_time"] - time.time()) < 5
    settled(cluster, timeout=90.0)


def test_a_short_chaos_run_on_zookeeper_with_synced_reads_is_valid(store):  # noqa: F811
    # Plain reads are served by whichever server a client is on: stale reads under partitions are
    # ZooKeeper's documented behaviour (a 20 s partition,kill run caught one: a read on a cut-off
    # server returned 34 after 36 and 39 had been acknowledged). With a sync first they see what
    # the leader committed, and writes and cas are linearizable.
    spec = store.parent / "zookeeper-sync.yaml"
    spec.write_text("target: zookeeper\noptions: {reads: sync}\n")
    proc = _splitbrain("--spec", str(spec), "--nemesis", "partition,kill", "--time-limit", "20", "--seed", "5",
                       "--store", str(store), "--quiet")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    assert "verdict          valid" in out
