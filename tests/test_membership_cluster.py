"""The membership family against real raftkv processes on loopback (no Docker): remove a voter through the
admin API, take it back as a learner and promote it, remove the leader, and heal back to every voter; and a
target without the admin API refuses the family before a run, in one line."""

from __future__ import annotations

import pytest

from nemesis.core import Nemesis
from targets.raftkv.loopback import LocalCluster
from targets.raftkv.plugin import RaftKV


def views(c) -> dict:
    return {n: c.membership(n)[1] for n in c.ids}


@pytest.mark.cluster
def test_a_voter_is_removed_taken_back_and_promoted_and_the_heal_restores_every_voter(tmp_path):
    with LocalCluster(4, base_dir=str(tmp_path)) as c:
        c.start_all()
        nem = Nemesis(c, RaftKV(), ["membership"])
        assert nem.problems() == []
        c.wait_for_leader(10.0)
        # the status probe says who votes
        assert c.probe("n1")["voters"] == ["n1", "n2", "n3", "n4"] and c.probe("n1")["member"] == "voter"

        done = nem.invoke({"f": "remove-member", "value": {"nodes": ["n3"]}})
        assert done["value"] == ["n3"], done["evidence"]
        assert done["evidence"]["n3"]["verified"]
        # n3 may have been the leader: it stepped down once its removal committed
        leader = c.wait_for_leader(10.0)
        assert c.membership(leader)[1]["voters"] == ["n1", "n2", "n4"]
        assert c.membership(leader)[1]["committed"] is True

        # a write still commits with three voters, and a node forwards a change to the leader
        follower = next(n for n in ["n1", "n2", "n4"] if n != leader)
        code, body = c.membership(follower, "add-learner", "n3")
        assert code == 200 and body["learners"] == ["n3"], body
        assert c.probe("n3") is not None
        code, body = c.membership(leader, "add-learner", "n3")
        assert code == 200 and body.get("unchanged"), body
        code, body = c.membership(leader, "promote", "n1")
        assert code == 200 and body.get("unchanged"), body
        code, body = c.membership(leader, "promote", "n9")
        assert code == 400 and body["error"] == "unknown-node", body

        done = nem.invoke({"f": "promote-member", "value": {"nodes": ["n3"]}})
        assert done["value"] == ["n3"], done["evidence"]
        assert c.membership(c.leader())[1]["voters"] == ["n1", "n2", "n3", "n4"]

        # one whole cycle in one op: out, and back as a voter
        done = nem.invoke({"f": "cycle-member", "value": {"nodes": ["n2"]}})
        assert done["value"] == ["n2"] and done["evidence"]["readd-member"]["n2"]["verified"], done["evidence"]
        assert c.membership(c.wait_for_leader(10.0))[1]["voters"] == ["n1", "n2", "n3", "n4"]

        # the leader removes itself: it leads until the change commits, then another voter leads
        done = nem.invoke({"f": "remove-member", "value": {"nodes": ["leader"]}})
        [old] = done["value"]
        assert done["evidence"][old]["verified"], done["evidence"]
        c.wait_for_leader(10.0)
        assert c.leader() != old
        assert c.probe(old)["member"] in ("removed", "voter")  # it may not have heard its own removal commit

        healed = nem.heal_all()
        assert healed["evidence"]["readd-member"]["nodes"] == [old], healed
        for n, view in views(c).items():
            assert view["voters"] == ["n1", "n2", "n3", "n4"] and view["learners"] == [], (n, view)


def test_the_cycles_variant_draws_whole_cycles_half_the_time_and_the_plain_family_never():
    import random

    from nemesis.membership import CYCLES, MEMBERSHIP

    nodes = ["n1", "n2", "n3", "n4"]
    rng = random.Random(0)
    cycles = [CYCLES.draw(rng, nodes, set()).f for _ in range(400)]
    assert 0.4 < cycles.count("cycle-member") / len(cycles) < 0.6
    assert {MEMBERSHIP.draw(rng, nodes, set()).f for _ in range(100)} == {"remove-member"}


def test_a_target_without_the_admin_api_refuses_the_family_in_one_line():
    class NoAdmin(RaftKV):
        name = "no-admin"
        membership = None

    class Cluster:
        node_ids = ["n1", "n2", "n3"]

    [line] = Nemesis(Cluster(), NoAdmin(), ["membership"]).problems()
    assert line.startswith("membership: target no-admin has no membership()") and "\n" not in line
