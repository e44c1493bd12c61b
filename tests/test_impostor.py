"""The impostor family's ops, verification and removal against a scripted cluster, and the checker that judges it."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from test_vote_crash import NoFailpointTarget as BareTarget  # a target with nothing optional

from checkers.election import check
from checkers.impostor import followed, impostors_from_events
from harness.cli import main
from history.operation import Operation
from nemesis.core import Nemesis, validate_op
from nemesis.errors import NemesisError, NemesisOpError
from nemesis.family import FaultContext
from nemesis.impostor import IMPOSTOR, TERM_LEAD, Impostors, new_id
from nemesis.registry import fault_facts
from nemesis.schedule import make_schedule
from targets.raftkv.plugin import RaftKV

NODES = ["n1", "n2", "n3"]


class RogueCluster:
    """Three members answering at term 7; a rogue whose connect probe sees what `reach` says."""

    node_ids = NODES
    ips = {n: f"10.0.0.{i}" for i, n in enumerate(NODES, 11)}

    def __init__(self, reach=None, exits=False):
        self.reach = reach or {}
        self.exits = exits
        self.started: list[list[str]] = []
        self.state = "missing"
        self.node_states = dict.fromkeys(NODES, "running")

    def states(self):
        return dict(self.node_states)

    def probe_all(self, timeout=0.5):
        return {n: {"role": "leader" if n == "n1" else "follower", "term": 7, "leader": "n1"} for n in NODES}

    def peer_address(self, node):
        return self.ips[node], 7000

    def rogue_address(self, name):
        return "10.0.0.200", 7000

    def rogue_key_path(self):
        return "/var/lib/splitbrain/cluster.key"

    def start_rogue(self, name, command, with_key=False):
        self.started.append(command)
        self.with_key = with_key
        self.state = "exited" if self.exits else "running"

    def rogue_state(self, name):
        return self.state

    def rogue_exec(self, name, cmd):
        addrs = cmd[4:]
        return 0, json.dumps({a: self.reach.get(a.split(":")[0], "open") for a in addrs})


    def rogue_log(self, name):
        return "line 1\nimpostor claiming n2, term 1000007\n"

    def remove_rogue(self, name):
        self.state = "missing"


def impostors(cluster) -> Impostors:
    ctx = FaultContext(cluster, RaftKV(), random.Random(1), restart=lambda nodes: {})
    clock = iter(range(10_000))
    return Impostors(ctx, clock=lambda: next(clock) * 0.5, sleep=lambda s: None)


def test_a_started_impostor_runs_the_targets_rogue_far_ahead_and_reaches_every_member():
    c = RogueCluster()
    value, evidence = impostors(c).start(IMPOSTOR.validate({"f": "start-impostor", "value": {"claim": "n2"}}, NODES))
    assert value == {"claim": "n2", "member": True, "term": 7 + TERM_LEAD, "key": "wrong",
                     "address": "10.0.0.200:7000", "nodes": NODES}
    assert evidence["verified"] and evidence["reached"] == dict.fromkeys(NODES, "open")
    assert "HMAC" in evidence["peer_auth"]
    [cmd] = c.started
    assert cmd[:4] == ["python3", "-u", "-m", "targets.raftkv.impostor"]
    assert cmd[cmd.index("--id") + 1] == "n2" and cmd[cmd.index("--term") + 1] == str(7 + TERM_LEAD)
    assert cmd[cmd.index("--peers") + 1] == "n1=10.0.0.11:7000,n2=10.0.0.12:7000,n3=10.0.0.13:7000"


def test_a_rogue_that_cannot_reach_a_member_is_an_infrastructure_error_and_is_removed():
    c = RogueCluster(reach={"10.0.0.13": "timeout"})
    imp = impostors(c)
    with pytest.raises(NemesisError, match="or does not reach every member's.*'n3': 'timeout'"):
        imp.start({"f": "start-impostor", "claim": "n1", "key": "wrong"})
    assert c.state == "missing" and imp.running is None


def test_a_rogue_not_listening_yet_is_waited_for_and_then_refused():
    c = RogueCluster(reach={"10.0.0.200": "refused"})
    with pytest.raises(NemesisError, match="not listening on its own peer port.*'self': 'refused'"):
        impostors(c).start({"f": "start-impostor", "claim": "n1", "key": "wrong"})


def test_a_member_that_is_down_need_not_be_reached():
    c = RogueCluster(reach={"10.0.0.13": "refused"})
    c.node_states["n3"] = "exited"
    value, evidence = impostors(c).start({"f": "start-impostor", "claim": "new", "key": "none"})
    assert value["claim"] == "n4" and not value["member"] and evidence["reached"] == {"n1": "open", "n2": "open"}


def test_a_rogue_that_dies_during_its_probe_is_reported_exited_not_as_a_docker_error():
    c = RogueCluster()

    def dies(name, cmd):
        c.state = "exited"
        raise RuntimeError("409 Conflict: container is not running")

    c.rogue_exec = dies
    with pytest.raises(NemesisError, match="the rogue is exited, not running"):
        impostors(c).start({"f": "start-impostor", "claim": "n1", "key": "wrong"})


def test_a_rogue_that_exits_is_an_infrastructure_error_with_its_log():
    with pytest.raises(NemesisError, match="the rogue is exited.*impostor claiming"):
        impostors(RogueCluster(exits=True)).start({"f": "start-impostor", "claim": "n1", "key": "wrong"})


def test_stop_removes_it_and_keeps_its_log_tail():
    c = RogueCluster()
    imp = impostors(c)
    imp.start({"f": "start-impostor", "claim": "member", "key": "wrong"})
    value, evidence = imp.stop()
    assert value["claim"] in NODES and evidence["removed"] and evidence["log_tail"][-1].startswith("impostor")
    assert c.state == "missing"
    assert imp.stop() == (None, {"note": "no impostor was running"})


@pytest.mark.parametrize("value,error", [
    ({"claim": "n9"}, "claim must be member, new or a node id"),
    ({"key": "borrowed"}, "key must be one of wrong, none, stolen"),
    ("n2", "expected {claim, key}"),
])
def test_bad_ops_are_refused_in_one_line(value, error):
    with pytest.raises(NemesisOpError, match=error):
        validate_op({"f": "start-impostor", "value": value}, NODES)


def test_the_defaults_claim_a_random_member_with_a_wrong_key():
    assert validate_op({"f": "start-impostor"}, NODES) == {"f": "start-impostor", "claim": "member", "key": "wrong"}
    assert new_id(["n1", "n2", "n4"]) == "n5"


def test_the_schedule_draws_valid_ops_and_reserves_no_node():
    plan = make_schedule(3, ["impostor", "kill"], NODES, 2.0, 60.0)
    starts = [s for s in plan if s.f == "start-impostor"]
    assert starts and any(s.f == "kill" for s in plan)
    for step in plan:
        validate_op(step.op(), NODES)


@settings(max_examples=50, deadline=None)
@given(IMPOSTOR.strategy(NODES))
def test_every_drawn_value_validates(value):
    validate_op({"f": "start-impostor", "value": value}, NODES)


def test_its_fault_facts_name_the_impostor_for_the_checker():
    value = {"claim": "n2", "member": True, "term": 1000009, "key": "wrong", "nodes": NODES}
    facts = fault_facts("start-impostor", value)
    assert facts["impostor"] == {"id": "n2", "member": True, "term": 1000009}
    assert "leader_nodes" not in facts  # it takes leadership from nobody
    assert "impostor" not in fault_facts("stop-impostor", {"claim": "n2"})
    assert IMPOSTOR.label("start-impostor", value) == "impostor as n2 (wrong key)"


def test_a_target_that_cannot_host_an_impostor_is_refused_before_the_run(tmp_path, capsys):
    [problem] = Nemesis(RogueCluster(), BareTarget(), ["impostor"]).problems()
    assert problem.startswith("impostor: target other cannot host an impostor")
    assert Nemesis(RogueCluster(), RaftKV(), ["impostor"]).problems() == []
    assert main(["run", "--target", "zookeeper", "--nemesis", "impostor", "--store", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "impostor: target zookeeper cannot host an impostor" in err and "Traceback" not in err


# ---- the checker ------------------------------------------------------------------------------

S = 1_000_000_000


def sample(t: float, node: str, term: int, leader: str | None, role: str = "follower") -> dict:
    return {"process": "observer", "type": "ok", "f": "status", "node": node, "time": int(t * S),
            "value": {"role": role, "term": term, "leader": leader, "commit_index": 5}}


def started(t: float, claim: str, term: int | None, member: bool = True) -> list[dict]:
    value = {"claim": claim, "member": member, "term": term, "key": "wrong", "nodes": NODES}
    return [{"process": "nemesis", "type": "invoke", "f": "start-impostor", "time": int(t * S),
             "value": {"claim": claim}},
            {"process": "nemesis", "type": "info", "f": "start-impostor", "time": int((t + 0.5) * S),
             "value": value, "fault": fault_facts("start-impostor", value)}]


def steady(until: float) -> list[dict]:
    return [sample(t / 10, n, 3, "n1", "leader" if n == "n1" else "follower")
            for t in range(int(until * 10)) for n in NODES]


def op(i: int, node: str, call: float, ret: float) -> Operation:
    return Operation(index=i, process=i, f="write", value=i, output=None, call=call * S, ret=ret * S,
                     status="ok", key="k", node=node)


def test_members_that_keep_their_terms_follow_no_impostor():
    events = started(1.0, "n2", 1_000_003) + steady(5.0)
    result = check(events, [])
    assert result["valid"], result["anomalies"]


def test_a_member_at_the_impostors_term_followed_it_with_what_it_acknowledged_after():
    events = started(1.0, "n2", 1_000_003) + steady(2.0) + [
        sample(2.1, "n3", 1_000_003, "n2"), sample(2.2, "n3", 1_000_004, None, "candidate"),
        sample(2.3, "n1", 1_000_004, "n3")]
    ops = [op(0, "n3", 1.0, 1.5), op(1, "n3", 2.5, 2.6), op(2, "n1", 2.5, 2.6)]
    result = check(events, ops)
    found = {a["node"]: a for a in result["anomalies"] if a["type"] == "impostor-followed"}
    assert set(found) == {"n1", "n3"} and not result["valid"]
    assert found["n3"]["summary"] == (
        "n3 followed an impostor without the cluster key (claiming to be n2, started at 1.000s): at 2.100s it "
        "reached term 1000003, the impostor's (1000003) and named n2 its leader; it acknowledged 1 client "
        "operation from then on")
    assert found["n3"]["operations"]["n3"][0]["index"] == 1
    assert "named" not in found["n1"]["summary"]  # it took the term later, from n3


def test_a_member_naming_a_stranger_its_leader_followed_it_even_without_a_term():
    events = started(1.0, "n4", None, member=False) + steady(2.0) + [sample(2.5, "n2", 3, "n4")]
    [a] = [a for a in check(events, [])["anomalies"] if a["type"] == "impostor-followed"]
    assert a["node"] == "n2" and "named n4 its leader (term 3)" in a["summary"] and "no member's" in a["summary"]


def test_samples_before_the_impostor_started_are_not_its_doing():
    events = steady(1.0) + [sample(0.5, "n2", 2_000_000, "n1")] + started(1.0, "n2", 1_000_003)
    imps = impostors_from_events([e for e in events if e["process"] == "nemesis"])
    assert [(i.id, i.term) for i in imps] == [("n2", 1_000_003)]
    by_node: dict[str, list[dict]] = {}
    for e in sorted((e for e in events if e["process"] == "observer"), key=lambda e: e["time"]):
        by_node.setdefault(e["node"], []).append(e)
    assert followed(by_node, imps, [], NODES) == []


def test_an_impostor_that_failed_to_start_counts_for_nothing():
    events = started(1.0, "n2", 1_000_003)
    events[-1] = {**events[-1], "type": "fail"}
    assert impostors_from_events(events) == []


def test_a_stolen_key_is_only_ever_asked_for_and_reaches_the_rogue():
    c = RogueCluster()
    impostors(c).start({"f": "start-impostor", "claim": "n3", "key": "stolen"})
    [cmd] = c.started
    assert c.with_key and cmd[cmd.index("--key-file") + 1] == "/var/lib/splitbrain/cluster.key"
    plan = make_schedule(5, ["impostor"], NODES, 1.0, 200.0)
    assert {s.value["key"] for s in plan if s.f == "start-impostor"} == {"wrong", "none"}
