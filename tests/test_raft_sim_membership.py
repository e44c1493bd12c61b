"""Membership changes in the raftkv simulator: the correct node keeps every Raft invariant while voters are
removed, taken back as learners and promoted under faults, and a leader that miscounts a change
(count-removed, stale-majority) is caught right after one, when a partition cuts the old majority from the new."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from targets.raftkv.sim import Fault, SimConfig, Simulation, run

DURATION = 3000


def membership_faults(nodes: int) -> st.SearchStrategy[Fault]:
    node = st.integers(0, nodes - 1)
    at = st.integers(0, DURATION - 1)
    gap = st.sampled_from([100, 300, 600, 1000])
    return st.one_of(
        st.builds(lambda t, i, g: Fault(t, "member-cycle", (i, g)), at, node, gap),
        st.builds(lambda t, g: Fault(t, "member-cycle-leader", (g,)), at, gap),
        st.builds(lambda t, i: Fault(t, "remove", (i,)), at, node),
        st.builds(lambda t, i: Fault(t, "add-learner", (i,)), at, node),
        st.builds(lambda t, i: Fault(t, "promote", (i,)), at, node),
        st.builds(lambda t: Fault(t, "split-voters"), at),
        st.builds(lambda t, side: Fault(t, "partition", tuple(sorted(side))), at,
                  st.sets(node, min_size=1, max_size=nodes // 2)),
        st.builds(lambda t: Fault(t, "heal"), at),
        st.builds(lambda t, i, d: Fault(t, "bounce", (i, d)), at, node, st.integers(1, 50)),
        st.builds(lambda t: Fault(t, "isolate-leader"), at),
        st.builds(lambda t, i: Fault(t, "transfer", (i,)), at, node),
    )


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 2**16), nodes=st.sampled_from([3, 4, 5]), data=st.data())
def test_the_correct_node_keeps_raft_safety_while_its_membership_changes_under_faults(seed, nodes, data):
    schedule = data.draw(st.lists(membership_faults(nodes), max_size=16))
    result = run(SimConfig(nodes=nodes, duration=DURATION), seed, schedule)
    assert result.ok, f"seed {seed}: {result.violations[0]}\nschedule: {schedule}"
    assert result.recovered_after is not None


def test_a_healed_cluster_takes_every_removed_voter_back():
    sim = Simulation(SimConfig(nodes=4, duration=DURATION), 3, [Fault(300, "remove", (1,)), Fault(900, "remove", (2,))])
    result = sim.run()
    assert result.ok, result.violations
    assert result.membership_changes >= 4  # two removals, and each node back as learner and voter
    for node in sim.nodes:
        assert node.core.membership.voters == ("n1", "n2", "n3", "n4")
        assert node.core.membership.learners == ()


def test_a_removed_leader_steps_down_once_its_removal_commits_and_another_voter_leads():
    sim = Simulation(SimConfig(nodes=3, duration=1500), 5, [Fault(600, "member-cycle-leader", (5000,))])
    result = sim.run()
    assert result.ok, result.violations
    removed = [n for n in sim.nodes if n.core.counters.removed_stepdowns]
    assert len(removed) == 1
    assert len(result.leaders_by_term) >= 2  # somebody else led after it


def removal_then_split(bug: str | None, seed: int, promote: bool) -> Simulation:
    """4 nodes: remove n4 (and, with promote, take it back), then cut the leader, the smaller half of its voters
    and every non-voter off from the other voters."""
    cfg = SimConfig(nodes=4, bugs=frozenset({bug}) if bug else frozenset(), duration=DURATION)
    schedule = [Fault(400, "member-cycle", (3, 300 if promote else 10_000)), Fault(1400, "split-voters")]
    return Simulation(cfg, seed, schedule)


@pytest.mark.parametrize("bug,promote", [("count-removed", False), ("stale-majority", True)])
def test_a_leader_that_miscounts_a_change_is_caught_when_a_partition_cuts_the_old_majority_from_the_new(bug, promote):
    caught = [removal_then_split(bug, seed, promote).run() for seed in range(5)]
    assert all(not r.ok for r in caught), [r.violations for r in caught]
    kinds = {r.violations[0].kind for r in caught}
    assert kinds <= {"leader-completeness", "state-machine-safety", "lost-write", "stale-read", "divergence"}, kinds


@pytest.mark.parametrize("promote", [False, True])
def test_the_correct_node_survives_the_same_change_and_partition(promote):
    for seed in range(5):
        result = removal_then_split(None, seed, promote).run()
        assert result.ok, (seed, result.violations)
        assert result.membership_changes >= 1
