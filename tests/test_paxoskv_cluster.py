"""paxoskv as real processes on loopback (no Docker): the server, storage and transport it shares
with raftkv elect a leader, serve writes through a follower, and replace a killed leader in a higher
ballot with the acknowledged write intact, the restarted node catching up."""

from __future__ import annotations

import time

import pytest

from targets.raftkv.loopback import LocalCluster, NodeClient

pytestmark = pytest.mark.cluster


class PaxosCluster(LocalCluster):
    module = "targets.paxoskv"


def leader_of(c: LocalCluster, among: list[str], timeout: float = 10.0) -> tuple[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        probes = c.probe_some(among)
        leads = [(p["term"], n) for n, p in probes.items() if p and p["role"] == "leader"]
        if leads:
            term, node = max(leads)
            return node, term
        assert time.monotonic() < deadline, f"no leader among {among}: {probes}"
        time.sleep(0.05)


def test_a_killed_leader_is_replaced_and_its_acknowledged_writes_survive(tmp_path):
    with PaxosCluster(3, base_dir=str(tmp_path)) as c:
        c.start_all()
        leader, ballot = leader_of(c, c.ids)
        follower = next(n for n in c.ids if n != leader)
        client = NodeClient(c.client_ports[follower])
        for i in range(20):
            assert client.put("k", i, request_id=f"w{i}")[0] == 200
        client.close()
        c.kill(leader)
        survivors = [n for n in c.ids if n != leader]
        successor, new_ballot = leader_of(c, survivors)
        assert new_ballot > ballot and successor != leader
        client = NodeClient(c.client_ports[successor])
        assert client.get("k") == (200, {"value": 19})
        assert client.put("k", 20)[0] == 200
        client.close()
        c.start(leader)
        deadline = time.monotonic() + 10
        while (c.probe(leader) or {}).get("commit_index") != c.probe(successor)["commit_index"]:
            assert time.monotonic() < deadline, "the restarted node did not catch up"
            time.sleep(0.05)
        assert c.probe(leader)["term"] == new_ballot
