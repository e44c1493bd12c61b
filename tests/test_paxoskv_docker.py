"""paxoskv in Docker: three nodes elect a leader, serve the workload client (forwarding from a
follower), answer the status probe as raftkv does (ballot as term), and a killed leader is
replaced in a higher ballot without losing an acknowledged write."""

from __future__ import annotations

import time

import pytest
from docker_cluster import client_ops, docker_cluster, settled

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def cluster():
    with docker_cluster("paxoskv") as c:
        yield c


def test_the_probe_reports_role_ballot_leader_and_the_clock(cluster):
    probes = settled(cluster)
    leader = next(n for n, p in probes.items() if p["role"] == "leader")
    ballot = probes[leader]["term"]
    # Ballot b belongs to member (b - 1) mod 3 of the sorted ids: the leader's own.
    assert sorted(probes)[(ballot - 1) % 3] == leader
    for p in probes.values():
        assert {"role", "term", "leader", "commit_index", "wall_time", "clock_rate"} <= set(p)
        assert abs(p["wall_time"] - time.time()) < 5


def test_the_workload_client_writes_through_a_follower_and_reads_back(cluster):
    probes = settled(cluster)
    follower = next(n for n, p in probes.items() if p["role"] != "leader")
    leader = probes[follower]["leader"]
    out = client_ops("paxoskv", cluster, [
        (follower, {"f": "write", "key": "k", "value": 1}),
        (follower, {"f": "cas", "key": "k", "value": [1, 2]}),
        (follower, {"f": "cas", "key": "k", "value": [1, 3]}),
        (leader, {"f": "read", "key": "k"}),
    ])
    assert [o["type"] for o in out] == ["ok", "ok", "fail", "ok"]
    assert out[0].get("node") == leader  # the follower forwarded it; the client records who served it
    assert out[3]["value"] == 2


def test_a_killed_leader_is_replaced_in_a_higher_ballot_and_the_write_survives(cluster):
    probes = settled(cluster)
    leader = next(n for n, p in probes.items() if p["role"] == "leader")
    assert client_ops("paxoskv", cluster, [(leader, {"f": "write", "key": "kept", "value": 7})])[0]["type"] == "ok"
    ballot = probes[leader]["term"]
    cluster.kill(leader)
    try:
        deadline = time.monotonic() + 10
        while True:
            others = cluster.probe_some([n for n in probes if n != leader])
            new = [(p["term"], n) for n, p in others.items() if p and p["role"] == "leader"]
            if new:
                break
            assert time.monotonic() < deadline, f"no new leader: {others}"
            time.sleep(0.05)
        term, successor = max(new)
        assert term > ballot and successor != leader
        assert client_ops("paxoskv", cluster, [(successor, {"f": "read", "key": "kept"})])[0]["value"] == 7
    finally:
        cluster.start(leader)
    settled(cluster)
