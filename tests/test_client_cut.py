"""Candidates cut off from their service (nemesis.client_cut), against a fake network that obeys the rules installed.

The fake is the harness's own point here: each node keeps the DROP rules the
real chain script would install (parsed from the script the cut runs), and a
connect probe from a to b times out when either drops the other's packets,
as INPUT DROP does to a TCP handshake. The Docker test of a real run is in
tests/test_election_docker.py.
"""

from __future__ import annotations

import json
import random
import re

import pytest

from nemesis import grudges as G
from nemesis.client_cut import ClientCut
from nemesis.core import Nemesis
from nemesis.errors import NemesisError
from targets.candidates.plugin import Candidates


class Net:
    def __init__(self):
        self.drops: dict[str, set[str]] = {}  # ip -> source ips it drops
        self.broken: set[str] = set()  # ips whose rules silently do not install

    def node(self, ip: str) -> set[str]:
        return self.drops.setdefault(ip, set())


class FakeCluster:
    def __init__(self, net: Net, prefix: str, count: int, first: int):
        self.net = net
        self.node_ids = [f"{prefix}{i}" for i in range(1, count + 1)]
        self.ips = {n: f"10.9.0.{first + i}" for i, n in enumerate(self.node_ids)}
        self.paused: set[str] = set()
        self.execs: list[tuple[str, str]] = []

    def states(self):
        return {n: "paused" if n in self.paused else "running" for n in self.node_ids}

    def exec_netns(self, node: str, cmd: list[str]):
        ip, script = self.ips[node], cmd[-1] if cmd[0] == "sh" else " ".join(cmd)
        self.execs.append((node, script.split()[0]))
        if "iptables-restore" in script:
            rules = re.findall(r"-A SPLITBRAIN -s ([0-9.]+) -j DROP", script)
            if ip in self.net.broken:
                rules = rules[:-1]
            self.net.drops[ip] = set(rules)
            return 0, "".join(f"-A SPLITBRAIN -s {r}/32 -j DROP\n" for r in rules)
        if "iptables -w -D INPUT" in script:
            self.net.drops[ip] = set()
            return 0, "0\n"
        if cmd[0] == "python3":  # nemesis.netprobe's connect probe: limit, then host:port...
            dests = {a: a.rpartition(":")[0] for a in cmd[4:]}
            return 0, json.dumps({a: "timeout" if d in self.net.node(ip) or ip in self.net.node(d) else "open"
                                  for a, d in dests.items()}) + "\n"
        raise AssertionError(f"unexpected command {cmd}")


def setup(candidates=3, servers=3):
    net = Net()
    cands, service = FakeCluster(net, "c", candidates, 21), FakeCluster(net, "n", servers, 11)
    return net, cands, service, ClientCut(cands, service, client_port=8700, service_port=2181)


def test_the_isolated_holder_loses_every_server_both_ways_and_keeps_its_peers_and_the_gateway():
    net, cands, service, cut = setup()
    ev = cut.start("isolate-leader", G.isolate(cands.node_ids, "c2"), cands.node_ids)
    assert ev["cut_from_service"] == ["c2"] and ev["verified"]
    assert net.drops[cands.ips["c2"]] == set(service.ips.values())
    assert all(net.drops[service.ips[s]] == {cands.ips["c2"]} for s in service.node_ids)
    assert not net.drops.get(cands.ips["c1"]) and not net.drops.get(cands.ips["c3"])
    # 3 candidates x 3 servers from the candidates' side, and each server against c2
    assert (ev["blocked_pairs"], ev["connected_pairs"]) == (3 + 3, 6)
    assert cut.active and cut.grudge_name == "isolate-leader"


def test_the_heal_removes_every_rule_and_checks_that_the_cut_candidate_connects_again():
    net, cands, service, cut = setup()
    cut.start("isolate-one", G.isolate(cands.node_ids, "c1"), cands.node_ids)
    ev = cut.stop(cands.node_ids)
    assert ev["healed_cut"] == ["c1"] and ev["verified"] and ev["blocked_pairs"] == 0
    assert ev["connected_pairs"] == 9 + 3  # the servers probe the candidate they had cut, too
    assert not any(net.drops.values()) and not cut.active


def test_a_random_halves_grudge_over_candidates_cuts_its_minority():
    net, cands, service, cut = setup(candidates=5)
    grudge = G.random_halves(cands.node_ids, random.Random(3))
    ev = cut.start("random-halves", grudge, cands.node_ids)
    assert len(ev["cut_from_service"]) == 2 and set(ev["cut_from_service"]) == set(G.cut_off(grudge))


def test_a_restarted_candidate_gets_its_cut_back_and_an_uncut_one_gets_nothing():
    net, cands, service, cut = setup()
    cut.start("isolate-one", G.isolate(cands.node_ids, "c3"), cands.node_ids)
    net.drops[cands.ips["c3"]] = set()  # a killed container loses its namespace and its rules
    assert cut.reapply("c1") is None
    assert cut.reapply("c3") == {"reapplied": "c3", "drops": ["n1", "n2", "n3"]}
    assert net.drops[cands.ips["c3"]] == set(service.ips.values())


def test_a_paused_candidate_is_cut_but_not_probed_from():
    net, cands, service, cut = setup()
    cands.paused.add("c2")
    ev = cut.start("isolate-leader", G.isolate(cands.node_ids, "c2"), cands.node_ids)
    assert ev["verified"] and net.drops[cands.ips["c2"]] == set(service.ips.values())
    assert not any(node == "c2" and cmd == "python3" for node, cmd in cands.execs)


def test_a_rule_that_did_not_install_is_an_error_not_a_silent_no_op():
    net, cands, service, cut = setup()
    net.broken.add(service.ips["n2"])
    with pytest.raises(NemesisError, match=r"n2 shows 0 DROP rules after installing 1 \(3 attempts\)"):
        cut.start("isolate-one", G.isolate(cands.node_ids, "c1"), cands.node_ids)


def test_an_election_runs_partition_family_cuts_candidates_from_the_service(monkeypatch):
    """Through the nemesis: the candidates' target names its service, and a start-partition becomes a cut."""
    import nemesis.partition as partition

    monkeypatch.setattr(partition, "iptables_problem", lambda: None)
    net, cands, service, _ = setup()

    class Servers:
        client_port = 2181

    target = Candidates("zk-lock")
    assert target.unsupported_faults(["partition", "loss"]) == [
        "loss: an election run's nemesis acts on the candidates, and only `partition` (a candidate cut off "
        "from the coordination service) is built for them"]
    service.target = Servers()
    target.service = service
    nem = Nemesis(cands, target, ["partition"], random.Random(1))
    draw = partition.PARTITION.draw(random.Random(5), cands.node_ids, set(), target)
    assert draw.value["grudge"] in Candidates.partition_grudges
    assert {partition.PARTITION.draw(random.Random(i), cands.node_ids, set(), target).value["grudge"]
            for i in range(50)} == set(Candidates.partition_grudges)
    op = {"f": "start-partition", "value": {"grudge": "isolate-one", "seed": 7}}
    value, ev = nem.injectors["partition"].invoke(partition.PARTITION.validate(op, cands.node_ids))
    cut = ev["cut_from_service"]
    assert len(cut) == 1 and net.drops[cands.ips[cut[0]]] == set(service.ips.values())
    assert partition.PARTITION.cut_off(value) == cut  # the report's band and the checker see the cut candidate
    nem.injectors["partition"].heal()
    assert not any(net.drops.values())
