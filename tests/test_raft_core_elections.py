"""How the raftkv core elects a new leader after its leader dies: PreVote asked again of a peer still in its
lease, and one of two simultaneous PreCandidates yielding to the other (no split vote)."""

from __future__ import annotations

import random

from targets.raftkv import messages as m
from targets.raftkv.core import CANDIDATE, FOLLOWER, LEADER, PRECANDIDATE, CoreConfig, RaftCore

IDS = ("n1", "n2", "n3")


def core(node_id: str, seed: int = 0) -> RaftCore:
    return RaftCore(CoreConfig(node_id, IDS, (15, 30), 3), random.Random(seed))


def follower_of_n1(node_id: str) -> RaftCore:
    """A follower that has just heard n1 lead term 1 (its log is empty, like n1's)."""
    c = core(node_id, seed=hash(node_id) % 100)
    c.step({"type": m.APPEND, "src": "n1", "dst": node_id, "term": 1, "prev_index": 0, "prev_term": 0,
            "entries": [], "commit": 0, "seq": 1})
    c.take_outbox()
    c.randomized_timeout = 30  # no campaign of its own unless a test sets it
    return c


def deliver(msgs: list[dict], nodes: dict[str, RaftCore]) -> None:
    for msg in msgs:
        if msg["dst"] in nodes:
            nodes[msg["dst"]].step(msg)


def campaign(c: RaftCore) -> list[dict]:
    c.randomized_timeout = c.election_elapsed + 1
    c.tick()
    assert c.role == PRECANDIDATE
    return c.take_outbox()


def test_a_prevote_ignored_by_a_peer_still_in_its_lease_is_asked_again_and_granted_a_tick_later():
    n2, n3 = follower_of_n1("n2"), follower_of_n1("n3")
    for _ in range(14):
        n2.tick()
        n3.tick()
    nodes = {"n2": n2, "n3": n3}
    # n2 times out at the minimum; n3 heard n1 14 ticks ago, still within its lease: it says nothing
    deliver(campaign(n2), nodes)
    assert n3.take_outbox() == []
    # a tick later n3's lease has run out, and n2 asks again instead of waiting a new timeout
    n3.tick()
    n2.tick()
    again = n2.take_outbox()
    assert [(x["type"], x["dst"]) for x in again] == [(m.PREVOTE, "n1"), (m.PREVOTE, "n3")]
    deliver(again, nodes)
    deliver(n3.take_outbox(), nodes)
    assert n2.role == CANDIDATE and n2.term == 2
    deliver(n2.take_outbox(), nodes)
    deliver(n3.take_outbox(), nodes)
    assert n2.role == LEADER


def test_only_peers_that_have_not_answered_are_asked_again():
    n2 = follower_of_n1("n2")
    campaign(n2)
    n2.step({"type": m.PREVOTE_RESP, "src": "n3", "dst": "n2", "term": 1, "granted": False})
    assert n2.role == PRECANDIDATE  # one refusal of two: undecided
    n2.tick()
    assert [x["dst"] for x in n2.take_outbox()] == ["n1"]


def test_of_two_simultaneous_precandidates_the_greater_id_yields_and_no_vote_splits():
    n2, n3 = follower_of_n1("n2"), follower_of_n1("n3")
    nodes = {"n2": n2, "n3": n3}
    for _ in range(20):  # both past their leases
        n2.tick()
        n3.tick()
    from_n2, from_n3 = campaign(n2), campaign(n3)
    # each PreVote reaches the other while both are PreCandidates
    deliver(from_n2, nodes)
    assert n3.role == FOLLOWER and n3.leader is None  # granted and yielded to the smaller id
    deliver(from_n3, nodes)
    assert n2.role == PRECANDIDATE  # granted n3's, but does not yield to a greater id
    # the grants: n3's reaches n2, n2's reaches a node that no longer campaigns
    deliver(n3.take_outbox(), nodes)
    deliver(n2.take_outbox(), nodes)
    assert n2.role == CANDIDATE and n3.role == FOLLOWER
    deliver(n2.take_outbox(), nodes)
    deliver(n3.take_outbox(), nodes)
    assert n2.role == LEADER and n2.term == 2
    assert (n2.counters.elections_started, n3.counters.elections_started) == (1, 0)


def test_a_precandidate_yields_to_a_more_up_to_date_log_whatever_the_ids():
    n2 = follower_of_n1("n2")
    for _ in range(20):
        n2.tick()
    campaign(n2)
    n2.step({"type": m.PREVOTE, "src": "n3", "dst": "n2", "term": 2, "last_index": 5, "last_term": 1,
             "force": False})
    assert n2.role == FOLLOWER
    assert n2.take_outbox()[-1]["granted"] is True


def test_a_precandidate_with_the_newer_log_refuses_and_keeps_campaigning():
    n3 = follower_of_n1("n3")
    n3.log.append([{"index": 1, "term": 1, "kind": m.NOOP, "data": None}])
    for _ in range(20):
        n3.tick()
    campaign(n3)
    n3.step({"type": m.PREVOTE, "src": "n2", "dst": "n3", "term": 2, "last_index": 0, "last_term": 0,
             "force": False})
    assert n3.role == PRECANDIDATE
    assert n3.take_outbox()[-1]["granted"] is False


def ticks_until_campaign(c: RaftCore, limit: int = 100) -> int:
    for n in range(1, limit + 1):
        c.tick()
        if c.role == PRECANDIDATE:
            return n
    raise AssertionError(f"no campaign within {limit} ticks")


def test_a_follower_whose_leader_closed_its_link_campaigns_at_the_minimum_timeout_not_before():
    n2 = follower_of_n1("n2")
    for _ in range(4):
        n2.tick()
    n2.leader_link_lost("n1")
    # heard n1 4 ticks ago; its lease on n2 runs 15 ticks from then, and not a tick less
    assert ticks_until_campaign(n2) == 11


def test_a_closed_link_to_a_follower_or_a_stranger_changes_no_timer():
    n2 = follower_of_n1("n2")
    n2.leader_link_lost("n3")
    n2.leader_link_lost("n9")
    assert ticks_until_campaign(n2) == 30


def test_within_its_lease_a_follower_whose_leader_closed_its_link_still_ignores_a_prevote():
    n2, n3 = follower_of_n1("n2"), follower_of_n1("n3")
    n3.leader_link_lost("n1")
    for _ in range(10):
        n3.tick()
    deliver(campaign(n2), {"n3": n3})
    assert n3.take_outbox() == []  # the lease stands: lease reads on n1 stay safe if n1 is alive


def test_hearing_from_the_leader_again_restores_a_random_timeout():
    n2 = follower_of_n1("n2")
    n2.leader_link_lost("n1")
    n2.step({"type": m.APPEND, "src": "n1", "dst": "n2", "term": 1, "prev_index": 0, "prev_term": 0,
             "entries": [], "commit": 0, "seq": 2})
    draws = set()
    for _ in range(40):
        draws.add(n2.randomized_timeout)
        n2.leader_link_lost("n1")
        n2.step({"type": m.APPEND, "src": "n1", "dst": "n2", "term": 1, "prev_index": 0, "prev_term": 0,
                 "entries": [], "commit": 0, "seq": 2})
    assert all(15 <= d <= 30 for d in draws) and len(draws) > 5


def test_both_followers_of_a_dead_leader_campaign_together_and_elect_one_without_a_split_vote():
    n2, n3 = follower_of_n1("n2"), follower_of_n1("n3")
    nodes = {"n2": n2, "n3": n3}
    n2.leader_link_lost("n1")
    n3.leader_link_lost("n1")
    for _ in range(40):
        for c in (n2, n3):
            c.tick()
            deliver(c.take_outbox(), nodes)
        if LEADER in (n2.role, n3.role):
            break
    assert sorted([n2.role, n3.role]) == [FOLLOWER, LEADER]
    assert n2.counters.elections_started + n3.counters.elections_started == 1
    assert n2.now <= 17  # the lease's 15 ticks, a tick for the tie-break
