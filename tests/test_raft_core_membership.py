"""Membership changes in the raftkv core and node, driven by hand (tests/test_raft_core.py's in-test cluster):
one change at a time, learners that replicate without voting, and a removed leader that steps down."""

from __future__ import annotations

from test_raft_core import Cluster, put


def change(action: str, member: str) -> dict:
    return {"f": "membership", "action": action, "member": member}


def test_a_removal_commits_through_the_log_and_every_node_holds_the_new_configuration():
    c = Cluster(4)
    leader = c.elect()
    victim = next(n for n in c.ids if n != leader)
    status, body = c.request(leader, change("remove", victim))
    assert status == 200 and victim not in body["voters"], body
    c.tick(20)
    for n in c.ids:
        if n != victim:
            assert victim not in c.nodes[n].core.membership.voters
    assert c.request(leader, put("k", 1))[0] == 200  # three voters commit without the removed one


def test_a_second_change_waits_for_the_first_to_commit():
    c = Cluster(4)
    leader = c.elect()
    a, b = [n for n in c.ids if n != leader][:2]
    c.isolate(*[n for n in c.ids if n != leader])  # nothing commits now
    c.nodes[leader].client_request(1, change("remove", a))
    c.nodes[leader].client_request(2, change("remove", b))
    replies = {h: (s, body) for h, s, body in c.nodes[leader].ready().replies}
    assert replies[2] == (409, {"error": "change-in-progress"})


def test_a_learner_replicates_but_neither_campaigns_nor_counts():
    c = Cluster(3)
    leader = c.elect()
    learner = next(n for n in c.ids if n != leader)
    assert c.request(leader, change("remove", learner))[0] == 200
    assert c.request(leader, change("add-learner", learner))[0] == 200
    assert c.request(leader, put("k", 7))[0] == 200
    c.tick(20)
    node = c.nodes[learner]
    assert node.core.membership.role_of(learner) == "learner" and node.kv.read("k").body["value"] == 7
    # cut off from the leader it never campaigns, however long it waits
    c.isolate(learner)
    c.tick(500)
    assert node.core.role == "follower" and node.core.counters.prevotes_started == 0
    c.heal()
    # promoted once caught up, it votes again
    assert c.request(c.leader(), change("promote", learner))[0] == 200
    c.tick(20)
    assert node.core.is_voter()


def test_a_removed_leader_commits_its_removal_without_counting_itself_then_steps_down():
    c = Cluster(3)
    leader = c.elect()
    status, body = c.request(leader, change("remove", leader))
    assert status == 200 and leader not in body["voters"]
    c.tick(50)
    assert c.nodes[leader].core.role == "follower" and c.nodes[leader].core.counters.removed_stepdowns == 1
    new = c.leader()
    assert new != leader and c.request(new, put("k", 1))[0] == 200
    assert c.nodes[leader].core.role == "follower"  # not a voter: never campaigns again


def test_a_change_sent_to_a_follower_is_forwarded_to_the_leader():
    c = Cluster(3)
    leader = c.elect()
    follower = next(n for n in c.ids if n != leader)
    status, body = c.request(follower, change("remove", leader))
    assert status == 200 and body.get("served_by") == leader and leader not in body["voters"]


def test_a_change_naming_a_node_outside_the_address_book_is_a_bad_request():
    c = Cluster(3)
    leader = c.elect()
    assert c.request(leader, change("add-learner", "n9"))[0] == 400
    assert c.request(leader, change("promote", "n2"))[1].get("unchanged") is True
