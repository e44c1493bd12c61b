"""The Redis Sentinel target against real Redis 7.0 servers and Sentinels: start, client, probe, a failover, a short partition run.

Marked docker (`pytest -m docker`). Each test removes only its own run's
containers and network (by run id), also when it fails. About a minute and a half.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from docker_cluster import client_ops, docker_cluster, settled
from test_run_docker import _splitbrain, store  # noqa: F401  (store is a fixture: its runs are cleaned)

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def cluster():
    with docker_cluster("redis-sentinel", timeout=90) as c:
        yield c


def ready(cluster, timeout: float = 30.0) -> dict:
    """settled, and more: every replica's link to the primary is up and every Sentinel knows the others
    and the replicas (a Sentinel finds the others through hello messages every 2 s; until it knows a
    quorum's worth it cannot call the primary down. It finds the replicas in the primary's INFO every
    10 s; a primary killed before then is never failed over: -failover-abort-no-good-slave)."""
    deadline = time.monotonic() + timeout
    while True:
        probes = settled(cluster, timeout=timeout)
        if all(p["link"] in (None, "connected") and p["other_sentinels"] == len(probes) - 1
               and p["known_replicas"] == len(probes) - 1 for p in probes.values()):
            return probes
        assert time.monotonic() < deadline, f"not ready: {probes}"
        time.sleep(0.3)


def ops(cluster, pairs: list[tuple[str, dict]]) -> list[dict]:
    return client_ops("redis-sentinel", cluster, pairs, timeout=3.0)


def test_the_cluster_starts_with_n1_primary_and_everyone_naming_it_in_epoch_0(cluster):
    probes = ready(cluster)
    assert {n: (p["role"], p["term"], p["leader"]) for n, p in probes.items()} == {
        "n1": ("leader", 0, "n1"), "n2": ("follower", 0, "n1"), "n3": ("follower", 0, "n1")}
    assert probes["n2"]["replicates"] == probes["n3"]["replicates"] == "n1"
    assert all(abs(p["wall_time"] - time.time()) < 5 for p in probes.values())  # Redis's TIME
    assert "7.0.15" in cluster.node_log("n1")


def test_write_read_cas_and_a_cas_that_fails_all_served_by_the_primary(cluster):
    key = f"k-{uuid.uuid4().hex[:6]}"
    got = ops(cluster, [
        ("n2", {"f": "read", "key": key, "value": None}),
        ("n1", {"f": "write", "key": key, "value": 1}),
        ("n3", {"f": "cas", "key": key, "value": [1, 2]}),
        ("n2", {"f": "cas", "key": key, "value": [1, 3]}),
        ("n3", {"f": "read", "key": key, "value": None}),
        ("n1", {"f": "cas", "key": f"{key}-new", "value": [None, 5]}),  # a missing register reads as null
    ])
    assert [(o["type"], o["value"], o.get("error")) for o in got] == [
        ("ok", None, None), ("ok", 1, None), ("ok", [1, 2], None), ("fail", None, "cas-mismatch"), ("ok", 2, None),
        ("ok", [None, 5], None)]
    assert {o["node"] for o in got} == {"n1"}  # every client's Sentinel sent it to the primary


def test_a_set_and_its_final_read_from_the_agreed_primary(cluster):
    key = f"s-{uuid.uuid4().hex[:6]}"
    got = ops(cluster, [("n1", {"f": "add", "key": key, "value": v}) for v in (3, 1, 2)]
              + [("n3", {"f": "add", "key": key, "value": 2}), ("n2", {"f": "read", "key": key, "value": None})])
    assert [o["type"] for o in got] == ["ok"] * 5
    assert got[-1]["value"] == [1, 2, 3] and got[-1]["node"] == "n1"


def test_a_replica_refuses_a_write_sent_to_it_directly(cluster):
    rc, out = cluster.exec("n2", ["redis-cli", "SET", "direct", "1"])
    assert "READONLY" in out


def test_a_killed_primary_is_replaced_and_the_new_one_acknowledges_a_write(cluster):
    ready(cluster)
    killed = time.monotonic()
    cluster.kill("n1")
    assert cluster.probe("n1") is None
    deadline = killed + 30
    while True:
        probes = cluster.probe_all()
        leaders = [n for n, p in probes.items() if p and p["role"] == "leader" and (p["term"] or 0) >= 1]
        if leaders and all(probes[n] and probes[n]["leader"] == leaders[0] for n in ("n2", "n3")):
            break
        assert time.monotonic() < deadline, f"no failover: {probes}; n2's log: {cluster.node_log('n2')[-3000:]}"
        time.sleep(0.2)
    new = leaders[0]
    survivor = ({"n2", "n3"} - {new}).pop()
    got = ops(cluster, [(survivor, {"f": "write", "key": "after-failover", "value": 9})])[0]
    assert (got["type"], got["node"]) == ("ok", new)
    assert time.monotonic() - killed < 20  # 2 s down-after, then Sentinel's vote and promotion
    # The old primary comes back as a master (its own config) until a Sentinel turns it into a replica.
    cluster.start("n1")
    deadline = time.monotonic() + 60
    while (cluster.probe("n1") or {}).get("redis_role") != "slave":
        assert time.monotonic() < deadline, f"n1 was not demoted: {cluster.probe('n1')}"
        time.sleep(0.5)
    assert cluster.probe("n1")["replicates"] == new
    rc, conf = cluster.exec("n1", ["cat", f"{cluster.layout.data_dir}/sentinel/sentinel.conf"])
    assert "sentinel config-epoch mymaster 1" in conf  # what the restarted Sentinel learnt, kept


def test_a_short_isolate_the_primary_run_completes_with_a_failover_in_its_results(store):  # noqa: F811
    proc = _splitbrain("--target", "redis-sentinel", "--nodes", "3", "--workload", "set",
                       "--nemesis", "nemesis.partition:ISOLATE_LEADER", "--nemesis-interval", "10",
                       "--time-limit", "20", "--seed", "2", "--store", str(store), "--quiet")
    out, err = proc.communicate(timeout=240)
    assert proc.returncode in (0, 1), out + err  # a verdict, valid or not: no infrastructure error
    results = json.loads(((store / "latest").resolve() / "results.json").read_text())
    assert results["status"] == "complete"
    failovers = results["checkers"]["split-brain"]["timeline"]["failovers"]
    assert failovers and failovers[0]["old_leader"] == "n1" and failovers[0]["new_leader"] in ("n2", "n3")
    assert failovers[0]["write_after_ns"] is not None
