"""The first-write-crash steps against a scripted cluster: what is armed, when crashed leaders come back, and what is left."""

from __future__ import annotations

import random

import pytest
from test_vote_crash import NODES, ArmsFailpoints, Nodes, NoFailpointTarget

from nemesis.core import Nemesis, validate_op
from nemesis.errors import NemesisError, NemesisOpError
from nemesis.family import FaultContext
from nemesis.first_write_crash import (
    CRASH_EXIT_CODE,
    FAILPOINT,
    FIRST_WRITE_CRASH,
    FirstWriteCrash,
)
from nemesis.schedule import make_schedule, parse_schedule


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.now += s


class ScriptedCluster(ArmsFailpoints):
    """Five nodes; `crash_at` says at which times (s) whoever is armed first crashes at the failpoint."""

    failpoint = FAILPOINT

    def __init__(self, clock, crash_at=(), refuse_arm=(), exit_code=CRASH_EXIT_CODE, down=()):
        self.node_ids = list(NODES)
        self.clock = clock
        self.exit = {n: (137 if n in down else None) for n in NODES}
        self.armed: set[str] = set()
        self.refuse_arm = set(refuse_arm)
        self.crash_at = sorted(crash_at)
        self.exit_code = exit_code
        self.log: list[tuple] = []

    def _advance(self):
        while self.crash_at and self.clock.now >= self.crash_at[0]:
            self.crash_at.pop(0)
            victims = sorted(self.armed)
            if victims:
                n = victims[0]
                self.exit[n] = self.exit_code
                self.armed.discard(n)
                self.log.append(("crash", n, round(self.clock.now, 2)))

    def states(self):
        self._advance()
        return {n: "running" if self.exit[n] is None else "exited" for n in NODES}

    def exit_codes(self):
        self._advance()
        return dict(self.exit)


    def restart(self, nodes):
        self.log.append(("start", tuple(nodes), round(self.clock.now, 2)))
        for n in nodes:
            self.exit[n] = None
            self.armed.discard(n)
        return {"verified": True, "nodes": {n: {"state": "running", "answers": True} for n in nodes}}


def fault(c, clock):
    ctx = FaultContext(c, None, random.Random(0), restart=c.restart)
    return FirstWriteCrash(ctx, clock=clock, sleep=clock.sleep)


def test_the_kth_crash_of_the_window_stays_down_k_base_delays_and_comes_back_armed():
    clock = Clock()
    c = ScriptedCluster(clock, crash_at=(0.5, 0.8, 1.0))
    fw = fault(c, clock)
    value, evidence = fw.start(base_s=1.0, window_s=5.0)
    crashes = value["crashes"]
    assert [(x["node"], x["k"], x["exit_code"], x["down_s"]) for x in crashes] == [
        ("n1", 1, CRASH_EXIT_CODE, 1.0), ("n2", 2, CRASH_EXIT_CODE, 2.0), ("n3", 3, CRASH_EXIT_CODE, 3.0)]
    # Each back after its own delay (k * base after its crash), the first to die first.
    for x in crashes:
        assert x["restarted_at_s"] - x["crashed_at_s"] == pytest.approx(x["down_s"], abs=0.11)
        assert x["answers"] and x["rearmed"]
    starts = [e for e in c.log if e[0] == "start"]
    assert [s[1] for s in starts] == [("n1",), ("n2",), ("n3",)]
    # Armed on every node at first; disarmed when the window closed; nothing left.
    assert value["armed"] == NODES and value["nodes"] == ["n1", "n2", "n3"]
    assert evidence["verified"] and evidence["window_closed_at_s"] == pytest.approx(5.0, abs=0.06)
    assert not c.armed and not fw.active and value["left_down"] == []
    assert all(c.exit[n] is None for n in NODES)


def test_a_crash_late_in_the_window_is_restarted_after_it_closes_and_not_armed_again():
    clock = Clock()
    c = ScriptedCluster(clock, crash_at=(1.9,))
    value, evidence = fault(c, clock).start(base_s=1.0, window_s=2.0)
    [x] = value["crashes"]
    assert x["node"] == "n1" and x["restarted_at_s"] >= 2.9 and "rearmed" not in x
    after = c.log[next(i for i, e in enumerate(c.log) if e[0] == "start"):]
    assert ("arm", "n1") not in after
    assert not c.armed and all(c.exit[n] is None for n in NODES)


def test_no_crash_in_the_window_arms_and_disarms_every_running_node():
    clock = Clock()
    c = ScriptedCluster(clock, down=("n5",))
    value, evidence = fault(c, clock).start(base_s=0.5, window_s=1.0)
    assert value["crashes"] == [] and value["nodes"] == [] and value["skipped"] == ["n5"]
    assert value["armed"] == ["n1", "n2", "n3", "n4"]
    assert sorted(n for op, n, *_ in c.log if op == "disarm") == ["n1", "n2", "n3", "n4"]
    assert not c.armed and FIRST_WRITE_CRASH.label("start-first-write-crash", value) == "first-write-crash: 0 crashes"


def test_a_node_that_refuses_the_failpoint_is_an_infrastructure_error_and_nothing_stays_armed():
    clock = Clock()
    c = ScriptedCluster(clock, refuse_arm={"n3"})
    with pytest.raises(NemesisError, match="n3 refused"):
        fault(c, clock).start()
    assert not c.armed


def test_an_exit_with_another_status_is_left_down_for_the_stop():
    clock = Clock()
    c = ScriptedCluster(clock, crash_at=(0.2,), exit_code=1)
    fw = fault(c, clock)
    value, _ = fw.start(base_s=0.5, window_s=1.0)
    assert value["crashes"] == [] and value["other_exits"] == {"n1": 1} and value["left_down"] == ["n1"]
    assert fw.active and fw.left_down == ["n1"]
    down, evidence = fw.stop()
    assert down == ["n1"] and evidence["verified"] and c.exit["n1"] is None and not fw.active


def test_the_heal_restarts_what_is_down_and_a_stop_with_nothing_to_do_says_so():
    clock = Clock()
    c = ScriptedCluster(clock)
    nemesis_like = fault(c, clock)
    assert nemesis_like.stop() == ([], {"note": "no node was left down"})


def test_validate_fills_defaults_and_refuses_bad_values():
    norm = validate_op({"f": "start-first-write-crash", "value": None}, NODES)
    assert norm == {"f": "start-first-write-crash", "base_s": 0.5, "window_s": 5.0}
    norm = validate_op({"f": "start-first-write-crash", "value": {"base_s": 2, "window_s": 8}}, NODES)
    assert (norm["base_s"], norm["window_s"]) == (2.0, 8.0)
    for bad in ({"base_s": 0}, {"window_s": -1}, {"base_s": "x"}, {"nodes": ["n1"]}, [1]):
        with pytest.raises(NemesisOpError):
            validate_op({"f": "start-first-write-crash", "value": bad}, NODES)
    assert validate_op({"f": "stop-first-write-crash", "value": None}, NODES) == {"f": "stop-first-write-crash"}


def test_the_schedule_draws_seeded_starts_and_stops_with_valid_ops():
    plan = make_schedule(1, ["first-write-crash"], NODES, 6.0, 60.0)
    assert plan == make_schedule(1, ["first-write-crash"], NODES, 6.0, 60.0)
    assert [s.f for s in plan[:2]] == ["start-first-write-crash", "stop-first-write-crash"]
    starts = [s.value for s in plan if s.f == "start-first-write-crash"]
    assert len({(v["base_s"], v["window_s"]) for v in starts}) > 1  # the draws vary with the seed's stream
    for step in plan:
        validate_op(step.op(), NODES)


def test_a_hand_written_entry_is_checked_before_the_run():
    [op] = parse_schedule([{"at": 1, "fault": "first-write-crash", "base_s": 1.0, "window_s": 4}], NODES)
    assert op.value == {"base_s": 1.0, "window_s": 4}
    with pytest.raises(ValueError, match="base_s"):
        parse_schedule([{"at": 1, "fault": "first-write-crash", "base_s": 0}], NODES)


def test_a_target_without_the_failpoint_is_refused_before_the_run():
    problems = Nemesis(Nodes(), NoFailpointTarget(), ["first-write-crash"]).problems()
    assert len(problems) == 1 and f"no {FAILPOINT} failpoint" in problems[0]


def test_raftkv_offers_the_failpoint_and_paxoskv_does_not():
    from targets.paxoskv.plugin import PaxosKV
    from targets.raftkv.plugin import RaftKV

    assert Nemesis(Nodes(), RaftKV(), ["first-write-crash"]).problems() == []
    [problem] = Nemesis(Nodes(), PaxosKV(), ["first-write-crash"]).problems()
    assert problem.startswith("first-write-crash: target paxoskv has no")


def test_the_report_labels_the_band_with_the_crashes_and_names_the_crashed_nodes():
    value = {"nodes": ["n1", "n3"], "crashes": [{"node": "n1"}, {"node": "n3"}]}
    assert FIRST_WRITE_CRASH.label("start-first-write-crash", value) == "first-write-crash: 2 crashes"
    assert FIRST_WRITE_CRASH.nodes_hit("start-first-write-crash", value) == ["n1", "n3"]
    assert FIRST_WRITE_CRASH.hits_leader("start-first-write-crash")
    assert FIRST_WRITE_CRASH.describe({"f": "start-first-write-crash", "value": {"base_s": 1.0, "window_s": 5.0}}) \
        == "start-first-write-crash base 1s window 5s"


def test_the_failpoint_picks_only_a_client_entry_of_the_leaders_own_term():
    from targets.raftkv.failpoints import FAILPOINTS, own_client_entry

    assert FAILPOINT in FAILPOINTS
    noop = {"index": 5, "term": 3, "kind": "noop", "data": None}
    old = {"index": 6, "term": 2, "kind": "op", "data": {}}
    mine = {"index": 7, "term": 3, "kind": "op", "data": {}}
    assert own_client_entry([noop, old], 3) is None
    assert own_client_entry([noop, old, mine], 3) is mine
    assert own_client_entry([], 3) is None
