"""The Patroni target against a real cluster (PostgreSQL 15, Patroni 3.0.2, etcd 3.4): start, client, probe, a failover.

Marked docker (`pytest -m docker`). One 3-node cluster is shared by the tests
of this file (it takes about 20 s to bootstrap: initdb on the first node to
take the leader key, a basebackup for each replica); the failover test runs
last, since it changes who leads. Each run's containers and network are
removed by run id, also when a test fails.
"""

from __future__ import annotations

import time
import uuid

import pytest
from docker_cluster import client_ops, docker_cluster, settled

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def cluster():
    with docker_cluster("patroni", timeout=150) as c:
        yield c


def ops(cluster, pairs):
    return client_ops("patroni", cluster, pairs, timeout=10.0)


def primary(cluster, timeout=60.0) -> tuple[str, dict]:
    """The primary once every other node runs as its replica. A replica names its timeline once it
    streams (its member key), so the term is not awaited."""
    deadline = time.monotonic() + timeout
    while True:
        probes = settled(cluster, timeout=timeout, same_term=False)
        if sorted(p["role"] for p in probes.values()) == ["follower"] * (len(probes) - 1) + ["leader"]:
            return next(n for n, p in probes.items() if p["role"] == "leader"), probes
        assert time.monotonic() < deadline, f"replicas not running: {probes}"
        time.sleep(0.2)


def test_the_cluster_starts_with_one_primary_the_replicas_stream_from(cluster):
    leader, probes = primary(cluster)
    assert all(p["leader"] == leader for p in probes.values())  # the DCS's leader key, seen by every node
    assert probes[leader]["term"] == 1 and probes[leader]["patroni_role"] == "master"
    assert all(abs(p["wall_time"] - time.time()) < 5 for p in probes.values())
    log = cluster.node_log(leader)
    assert "PostgreSQL 15" in log and "initialized a new cluster" in log
    replica = next(n for n in cluster.node_ids if n != leader)
    assert "bootstrap from leader" in cluster.node_log(replica)  # a basebackup of the primary
    rc, out = cluster.exec(leader, ["ps", "-o", "user=", "-C", "postgres"])
    assert rc == 0 and set(out.split()) == {"postgres"}  # PostgreSQL does not run as root


def test_write_read_cas_and_a_cas_that_fails_through_any_node(cluster):
    key = f"k-{uuid.uuid4().hex[:6]}"
    got = ops(cluster, [
        ("n1", {"f": "read", "key": key, "value": None}),
        ("n2", {"f": "write", "key": key, "value": 1}),
        ("n3", {"f": "cas", "key": key, "value": [1, 2]}),
        ("n1", {"f": "cas", "key": key, "value": [1, 3]}),
        ("n2", {"f": "read", "key": key, "value": None}),
    ])
    assert [(o["type"], o["value"]) for o in got] == [("ok", None), ("ok", 1), ("ok", [1, 2]), ("fail", None), ("ok", 2)]
    assert got[3]["error"] == "cas-mismatch"


def test_a_set_and_its_final_read(cluster):
    key = f"set-{uuid.uuid4().hex[:6]}"
    adds = [(f"n{1 + v % 3}", {"f": "add", "key": key, "value": v}) for v in range(100)]
    got = ops(cluster, adds + [("n3", {"f": "read", "key": key, "value": None})])
    assert {o["type"] for o in got[:-1]} == {"ok"}
    # the completion also names the primary that served it (libpq chose it among the hosts)
    assert {k: v for k, v in got[-1].items() if k != "node"} == {"type": "ok", "value": list(range(100)), "error": None}
    assert got[-1]["node"] in cluster.node_ids


def test_why_clock_faults_are_refused_python_sleeps_fail_under_libfaketime_with_a_real_monotonic_clock(cluster):
    """Patroni's Python under the harness's libfaketime settings (wall clock only) cannot sleep."""
    env = ("LD_PRELOAD=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 FAKETIME_TIMESTAMP_FILE=/tmp/ft "
           "FAKETIME_CACHE_DURATION=1")
    script = "import time\nfor _ in range(2000): time.sleep(0.001)\nprint('slept')"
    rc, out = cluster.exec("n1", ["sh", "-c", f"echo +0 > /tmp/ft; {env} FAKETIME_DONT_FAKE_MONOTONIC=1 "
                                              f"python3 -c \"{script}\""])
    assert rc != 0 and "OSError: [Errno 22] Invalid argument" in out
    rc, out = cluster.exec("n1", ["sh", "-c", f"{env} python3 -c \"{script}\""])  # the monotonic clock faked too
    assert rc == 0 and "slept" in out


def test_a_killed_primary_is_replaced_by_a_new_one_on_a_new_timeline_that_takes_writes(cluster):
    old, probes = primary(cluster)
    timeline = probes[old]["term"]
    key = f"kill-{uuid.uuid4().hex[:6]}"
    assert ops(cluster, [(old, {"f": "write", "key": key, "value": 1})])[0]["type"] == "ok"
    killed_at = time.monotonic()
    cluster.kill(old)
    new = None
    while new is None:
        assert time.monotonic() - killed_at < 45, f"no new primary: {cluster.probe_all()}"
        time.sleep(0.2)
        new = next((n for n, p in cluster.probe_all().items()
                    if n != old and p and p["role"] == "leader" and p["term"] > timeline), None)
    # ttl 10 s: the killed primary's leader key expires within 10 s of its last renewal.
    assert time.monotonic() - killed_at < 30
    # A client bound to the dead node skips it and finds the new primary.
    got = ops(cluster, [(old, {"f": "write", "key": key, "value": 2}), (new, {"f": "read", "key": key, "value": None})])
    assert [(o["type"], o["value"]) for o in got] == [("ok", 2), ("ok", 2)]
    cluster.start(old)
    deadline = time.monotonic() + 90
    while True:  # it comes back as a replica of the new timeline (pg_rewind, or a fresh copy)
        p = cluster.probe(old)
        if p and p["role"] == "follower" and p["leader"] == new and p["term"] == timeline + 1:
            break
        assert time.monotonic() < deadline, f"{old} did not rejoin: {p}"
        time.sleep(0.5)
    assert primary(cluster)[0] == new
