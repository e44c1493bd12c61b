"""The vote-crash steps against a scripted cluster: what is armed, killed, restarted and left down, and when it gives up."""

from __future__ import annotations

import random

import pytest

from nemesis.core import Nemesis, validate_op
from nemesis.errors import NemesisError
from nemesis.family import FaultContext
from nemesis.schedule import make_schedule
from nemesis.vote_crash import CRASH_EXIT_CODE, FAILPOINT, VoteCrash, _winner

NODES = ["n1", "n2", "n3", "n4", "n5"]


def lead(term):
    return {"role": "leader", "term": term, "leader": None}


def follow(term, leader=None):
    return {"role": "follower", "term": term, "leader": leader}


class ArmsFailpoints:
    """The failpoint half of a scripted ClusterControl: arming a refusing or stopped node fails."""

    failpoint = FAILPOINT

    def set_failpoint(self, node, name, on):
        assert name == self.failpoint
        self.log.append(("arm" if on else "disarm", node))
        if node in self.refuse_arm or self.exit[node] is not None:
            return False
        (self.armed.add if on else self.armed.discard)(node)
        return True


class ScriptedCluster(ArmsFailpoints):
    """A five-node ClusterControl whose election after the leader's kill is scripted by `on_kill_leader`."""

    def __init__(self, refuse_arm=(), on_kill_leader=None, second=None):
        self.node_ids = list(NODES)
        self.status = {n: follow(1, "n1") for n in NODES}
        self.status["n1"] = lead(1)
        self.exit = {n: None for n in NODES}
        self.armed: set[str] = set()
        self.refuse_arm = set(refuse_arm)
        self.on_kill_leader = on_kill_leader
        self.second = second  # statuses after the restarts
        self.log: list[tuple] = []

    def state(self, node):
        return "running" if self.exit[node] is None else "exited"

    def probe(self, node, timeout=0.5):
        return self.status[node] if self.exit[node] is None else None

    def probe_some(self, nodes, timeout=0.5):
        return {n: self.probe(n) for n in nodes}

    def exit_codes(self):
        return dict(self.exit)


    def kill(self, node):
        self.log.append(("kill", node))
        self.exit[node] = 137
        if node == "n1" and self.on_kill_leader:
            self.on_kill_leader(self)

    def restart(self, nodes):
        """The nemesis's restart (FaultContext.restart): start them, verified."""
        self.log.append(("start", tuple(nodes)))
        for n in nodes:
            self.exit[n] = None
            self.armed.discard(n)
        if self.second:
            self.status.update(self.second)
        return {"nodes": list(nodes)}


def n4_wins_term_2(c):
    """n2, n3 and n5 grant n4 their votes and crash at the failpoint; n4 leads term 2."""
    for n in ("n2", "n3", "n5"):
        c.exit[n] = CRASH_EXIT_CODE
        c.armed.discard(n)
    c.status["n4"] = lead(2)


def context(c):
    return FaultContext(c, None, random.Random(0), restart=c.restart)


def fast(c):
    return VoteCrash(context(c), sleep=lambda s: None)


def test_a_forgetful_voter_makes_the_old_leader_a_second_leader_of_the_same_term():
    c = ScriptedCluster(on_kill_leader=n4_wins_term_2,
                        second={"n1": lead(2), "n2": follow(2, "n1"), "n3": follow(2, "n1")})
    fault = fast(c)
    value, evidence = fault.start()
    assert value["outcome"] == "two-leaders-one-term"
    assert (value["old_leader"], value["first_winner"], value["term"]) == ("n1", "n4", 2)
    assert (value["second_winner"], value["second_term"]) == ("n1", 2)
    assert value["crashed"] == ["n2", "n3", "n5"]
    # The winner is killed; the leader comes back first, then two voters: with it, a bare majority.
    assert ("kill", "n4") in c.log
    starts = [e for e in c.log if e[0] == "start"]
    assert starts == [("start", ("n1",)), ("start", ("n2", "n3"))]
    assert value["left_down"] == ["n4", "n5"] and fault.left_down == ["n4", "n5"]
    assert not c.armed and evidence["verified"]
    down, _ = fault.stop()
    assert down == ["n4", "n5"] and all(c.exit[n] is None for n in NODES)
    assert not fault.active


def test_a_voter_that_remembers_gives_the_next_term_instead():
    c = ScriptedCluster(on_kill_leader=n4_wins_term_2, second={"n2": lead(3), "n1": follow(3, "n2")})
    value, _ = fast(c).start()
    assert value["outcome"] == "next-term" and value["second_term"] == 3


def test_nothing_is_done_while_a_node_is_down():
    c = ScriptedCluster()
    c.exit["n3"] = 137
    value, evidence = fast(c).start()
    assert value["outcome"] == "skipped" and "n3" in evidence["note"]
    assert c.log == []


def test_a_node_that_refuses_the_failpoint_is_an_infrastructure_error_and_nothing_stays_armed():
    c = ScriptedCluster(refuse_arm={"n4"})
    with pytest.raises(NemesisError, match="n4 refused"):
        fast(c).start()
    assert not c.armed
    assert not any(e[0] == "kill" for e in c.log)


def test_without_a_winner_everything_comes_back():
    def nobody_wins(c):
        c.exit["n2"] = CRASH_EXIT_CODE  # voted for n3, who then lost to a split vote
        c.status.update({"n3": {"role": "candidate", "term": 2, "leader": None},
                         "n4": {"role": "candidate", "term": 2, "leader": None}})

    now = [0.0]

    def sleep(s):
        now[0] += s

    c = ScriptedCluster(on_kill_leader=nobody_wins)
    fault = VoteCrash(context(c), clock=lambda: now[0], sleep=sleep)
    value, _ = fault.start()
    assert value["outcome"] == "no-winner"
    assert ("start", ("n1", "n2")) in c.log and not c.armed and not fault.active


@pytest.mark.parametrize("statuses, crashed_enough, expect", [
    ({"n2": lead(2)}, False, (2, "n2")),
    ({"n2": follow(2, "n4"), "n3": follow(2, "n4")}, False, (2, "n4")),  # named by its followers
    ({"n4": follow(2)}, True, (2, "n4")),  # the one voter left running got the crashed voters' votes
    ({"n4": follow(2)}, False, None),
    ({"n3": follow(1, "n1"), "n4": follow(1, "n1")}, True, None),  # nothing new since term 1
    ({"n3": follow(2), "n4": follow(2)}, True, None),  # two candidates, no say who won
    ({"n3": None, "n4": follow(2)}, True, None),  # a voter that does not answer may be the winner
])
def test_who_won_as_the_running_voters_tell(statuses, crashed_enough, expect):
    assert _winner(statuses, 1, enough_crashed=crashed_enough) == expect


def test_the_schedule_starts_and_stops_vote_crash_with_valid_ops():
    plan = make_schedule(1, ["vote-crash"], NODES, 5.0, 60.0)
    assert [s.f for s in plan[:2]] == ["start-vote-crash", "stop-vote-crash"]
    for step in plan:
        validate_op(step.op(), NODES)


class NoFailpointTarget:
    name = "other"
    peer_port = 1

    def clock_control(self):
        return None

    def unsupported_faults(self, faults):
        return []


class Nodes:
    node_ids = NODES
    ips = {n: f"10.0.0.{i}" for i, n in enumerate(NODES, 11)}


def test_a_target_without_the_failpoint_is_refused_before_the_run():
    problems = Nemesis(Nodes(), NoFailpointTarget(), ["vote-crash"]).problems()
    assert len(problems) == 1 and "no crash-after-vote failpoint" in problems[0]


def test_raftkv_offers_the_failpoint():
    from targets.raftkv.plugin import RaftKV

    assert Nemesis(Nodes(), RaftKV(), ["vote-crash"]).problems() == []


def test_the_report_labels_a_vote_crash_band_with_its_outcome_and_the_nodes_it_hit():
    from nemesis.vote_crash import VOTE_CRASH

    c = ScriptedCluster(on_kill_leader=n4_wins_term_2, second={"n1": lead(2)})
    value, _ = fast(c).start()
    assert VOTE_CRASH.label("start-vote-crash", value) == "vote-crash: two-leaders-one-term"
    assert VOTE_CRASH.nodes_hit("start-vote-crash", value) == ["n1", "n2", "n3", "n4", "n5"]  # the leader, three voters, the winner


def test_vote_crash_on_two_nodes_is_refused_before_the_run():
    from targets.raftkv.plugin import RaftKV

    class Two(Nodes):
        node_ids = ["n1", "n2"]

    [problem] = Nemesis(Two(), RaftKV(), ["vote-crash"]).problems()
    assert "at least 3 nodes" in problem


def test_a_candidate_still_campaigning_is_not_taken_for_the_winner():
    campaigning = {"role": "candidate", "term": 2, "leader": None}
    assert _winner({"n4": campaigning}, 1, enough_crashed=True) is None


def test_a_voter_that_crashes_after_the_last_look_is_restarted_when_nobody_won():
    now = [0.0]

    def sleep(s):
        now[0] += s

    def nobody_wins(c):
        c.status.update({"n3": {"role": "candidate", "term": 2, "leader": None},
                         "n4": {"role": "candidate", "term": 2, "leader": None}})

    c = ScriptedCluster(on_kill_leader=nobody_wins)
    real_disarm = c.set_failpoint

    def arm(node, name, on):
        if not on and node == "n5":
            c.exit["n5"] = CRASH_EXIT_CODE  # its grant went out just before the disarm
            return False
        return real_disarm(node, name, on)

    c.set_failpoint = arm
    value, _ = VoteCrash(context(c), clock=lambda: now[0], sleep=sleep).start()
    assert value["outcome"] == "no-winner" and "n5" in value["crashed"]
    assert all(code is None for code in c.exit.values())
