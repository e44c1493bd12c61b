"""The etcd target against real etcd 3.4 containers: start, client, probe, a kill, the clock, and a short chaos run.

Marked docker (`pytest -m docker`). Each test removes only its own run's
containers and network (by run id), also when it fails. About a minute.
"""

from __future__ import annotations

import time
import uuid

import pytest
from docker_cluster import client_ops, docker_cluster, settled
from test_run_docker import _splitbrain, store  # noqa: F401  (store is a fixture: its runs are cleaned)

pytestmark = pytest.mark.docker

FAKETIME = "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 FAKETIME=-10d"


@pytest.fixture(scope="module")
def cluster():
    with docker_cluster("etcd", timeout=90) as c:
        yield c


def ops(cluster, pairs: list[tuple[str, dict]], serializable: bool = False) -> list[dict]:
    return client_ops("etcd", cluster, pairs, serializable=serializable)


def test_the_cluster_starts_with_one_leader_all_nodes_agree_on(cluster):
    probes = settled(cluster)
    leaders = [n for n, p in probes.items() if p["role"] == "leader"]
    assert len(leaders) == 1
    assert {p["leader"] for p in probes.values()} == set(leaders)
    assert len({p["term"] for p in probes.values()}) == 1
    assert all(isinstance(p["commit_index"], int) and p["id"] == n for n, p in probes.items())
    assert '"etcd-version":"3.4.23"' in cluster.node_log("n1")


def test_write_read_cas_and_a_cas_that_fails(cluster):
    key = f"k-{uuid.uuid4().hex[:6]}"
    got = ops(cluster, [
        ("n1", {"f": "read", "key": key, "value": None}),
        ("n1", {"f": "write", "key": key, "value": 1}),
        ("n2", {"f": "read", "key": key, "value": None}),
        ("n3", {"f": "cas", "key": key, "value": [1, 2]}),
        ("n1", {"f": "cas", "key": key, "value": [1, 3]}),
        ("n2", {"f": "read", "key": key, "value": None}),
    ])
    assert [(o["type"], o["value"]) for o in got] == [
        ("ok", None), ("ok", 1), ("ok", 1), ("ok", [1, 2]), ("fail", None), ("ok", 2)]
    assert got[4]["error"] == "cas-mismatch"


def test_a_set_and_serializable_reads(cluster):
    key = f"set-{uuid.uuid4().hex[:6]}"
    adds = [("n1", {"f": "add", "key": key, "value": v}) for v in range(200)]  # the range answer is chunked
    got = ops(cluster, adds + [("n3", {"f": "read", "key": key, "value": None})], serializable=True)
    assert {o["type"] for o in got[:-1]} == {"ok"}
    assert got[-1] == {"type": "ok", "value": list(range(200)), "error": None}


def test_a_killed_member_restarts_with_its_data_and_rejoins(cluster):
    leader = next(n for n, p in settled(cluster).items() if p["role"] == "leader")
    follower = next(n for n in cluster.node_ids if n != leader)
    key = f"kill-{uuid.uuid4().hex[:6]}"
    assert ops(cluster, [(leader, {"f": "write", "key": key, "value": 7})])[0]["type"] == "ok"
    cluster.kill(follower)
    assert cluster.probe(follower) is None
    cluster.start(follower)
    settled(cluster)
    assert ops(cluster, [(follower, {"f": "read", "key": key, "value": None})], serializable=True)[0]["value"] == 7
    rc, out = cluster.exec(follower, ["ls", f"{cluster.layout.data_dir}/member"])
    assert rc == 0 and "wal" in out.split()


def test_libfaketime_does_not_reach_etcd_inside_a_node(cluster):
    """Why clock faults are refused: date under libfaketime is ten days back, etcd's own clock is not."""
    script = (f"{FAKETIME} date +%s; "
              f"{FAKETIME} timeout 3 etcd --logger=zap --data-dir=/tmp/clockprobe "
              "--listen-client-urls=http://127.0.0.1:23790 --advertise-client-urls=http://127.0.0.1:23790 "
              "--listen-peer-urls=http://127.0.0.1:23800 2>&1 | head -1")
    rc, out = cluster.exec("n1", ["sh", "-c", script], timeout=20)
    faked, log = out.splitlines()[:2]
    from datetime import datetime

    etcd_time = datetime.fromisoformat(log.split('"ts":"')[1].split('"')[0].replace("Z", "+00:00")).timestamp()
    assert abs(int(faked) - (time.time() - 10 * 86400)) < 60  # libfaketime works on a libc program
    assert abs(etcd_time - time.time()) < 60  # and not on etcd


def test_a_short_chaos_run_on_etcd_is_valid(store):  # noqa: F811
    proc = _splitbrain("--target", "etcd", "--nemesis", "partition,kill", "--time-limit", "20", "--seed", "5",
                       "--store", str(store), "--quiet")
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, out + err
    assert "verdict          valid" in out
