"""Grudges as the issue states them: who cannot hear whom, for every shape and cluster size."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nemesis import grudges as G


def nodes_of(n: int) -> list[str]:
    return [f"n{i}" for i in range(1, n + 1)]


sizes = st.integers(min_value=3, max_value=9)
seeds = st.integers(min_value=0, max_value=2**31)


def test_halves_split_five_nodes_two_against_three():
    g = G.halves(nodes_of(5))
    assert G.hears(g, "n1") == {"n1", "n2"}
    assert G.hears(g, "n5") == {"n3", "n4", "n5"}


@given(sizes, seeds)
def test_majorities_ring_every_node_sees_a_majority_and_no_two_the_same(n, seed):
    nodes = nodes_of(n)
    g = G.majorities_ring(nodes, random.Random(seed))
    seen = [G.hears(g, x) for x in nodes]
    assert all(len(s) > n // 2 for s in seen), "every node sees a majority"
    assert len(set(seen)) == n, "no two nodes see the same majority"
    assert all(x in G.hears(g, x) for x in nodes)


def test_majorities_ring_of_five_is_symmetric_neighbours():
    g = G.majorities_ring(nodes_of(5))
    assert G.hears(g, "n1") == {"n5", "n1", "n2"}
    for a in g:
        for b in g[a]:
            assert a in g[b], "odd ring: hearing is mutual"


@given(sizes, seeds)
def test_bridge_one_node_hears_everyone_and_the_sides_do_not_hear_each_other(n, seed):
    nodes = nodes_of(n)
    g = G.bridge(nodes, random.Random(seed))
    bridges = [x for x in nodes if not g[x]]
    assert len(bridges) == 1
    b = bridges[0]
    sides = {G.hears(g, x) - {b} for x in nodes if x != b}
    assert len(sides) == 2
    left, right = sides
    assert not left & right and left | right == set(nodes) - {b}
    for x in nodes:
        if x != b:
            assert b in G.hears(g, x)


@given(st.integers(min_value=2, max_value=9), seeds)
def test_one_way_a_minority_drops_the_majority_which_still_hears_it(n, seed):
    nodes = nodes_of(n)
    g = G.one_way(nodes, random.Random(seed))
    deaf = [x for x in nodes if g[x]]
    assert 1 <= len(deaf) <= max(1, (n - 1) // 2)
    for d in deaf:
        for other in nodes:
            if other not in deaf:
                assert other in g[d], "the deaf node drops the majority"
                assert d not in g[other], "the majority still hears the deaf node"


@given(sizes, seeds)
def test_halves_and_isolation_are_symmetric_and_cover_everyone(n, seed):
    nodes = nodes_of(n)
    rng = random.Random(seed)
    for g in (G.halves(nodes), G.random_halves(nodes, rng), G.isolate(nodes, "n2")):
        assert set(g) == set(nodes)
        for a in g:
            for b in g[a]:
                assert a in g[b]
        assert any(g.values())


def test_isolate_leader_isolates_exactly_that_node():
    g = G.compute("isolate-leader", nodes_of(5), random.Random(1), leader="n3")
    assert g["n3"] == {"n1", "n2", "n4", "n5"}
    assert G.hears(g, "n1") == {"n1", "n2", "n4", "n5"}


def test_isolate_leader_without_a_leader_is_an_error():
    with pytest.raises(G.GrudgeError):
        G.compute("isolate-leader", nodes_of(3), random.Random(1), leader=None)


def test_unknown_grudge_and_too_small_clusters_are_refused():
    with pytest.raises(G.GrudgeError):
        G.compute("triangle", nodes_of(5), random.Random(1))
    with pytest.raises(G.GrudgeError):
        G.majorities_ring(nodes_of(2))
    with pytest.raises(G.GrudgeError):
        G.bridge(nodes_of(2))


def test_every_named_grudge_blocks_something_on_five_nodes():
    for name in G.GRUDGES:
        g = G.compute(name, nodes_of(5), random.Random(7), leader="n1")
        assert G.blocked_pairs(g), name


def test_schedule_and_nemesis_agree_on_the_grudge_names():
    from nemesis.schedule import GRUDGES as scheduled

    assert set(scheduled) == set(G.GRUDGES)


def test_split_voters_cuts_the_leader_and_a_removed_node_off_from_the_other_voters():
    from nemesis.grudges import hears, split_voters

    nodes = ["n1", "n2", "n3", "n4"]
    g = split_voters(nodes, random.Random(1), "n2", ["n1", "n2", "n3"])
    assert hears(g, "n2") == {"n2", "n4"} and hears(g, "n1") == {"n1", "n3"}
    # four voters split two and two, the leader on one side
    g = split_voters(nodes, random.Random(2), "n3", nodes)
    assert len(hears(g, "n3")) == 2 and "n3" in hears(g, "n3")
    assert all(len(hears(g, n)) == 2 for n in nodes)
    # five voters: the leader with one other, a majority of three against them
    g = split_voters(["n1", "n2", "n3", "n4", "n5"], random.Random(3), "n1", None)
    assert len(hears(g, "n1")) == 2


def test_the_plain_partition_family_never_draws_a_grudge_aimed_at_the_configuration():
    from nemesis.grudges import AIMED_GRUDGES
    from nemesis.partition import PARTITION, SPLIT_VOTERS

    rng = random.Random(0)
    drawn = {PARTITION.draw(rng, ["n1", "n2", "n3", "n4"], set()).value["grudge"] for _ in range(200)}
    assert not drawn & set(AIMED_GRUDGES)
    assert SPLIT_VOTERS.draw(rng, ["n1", "n2", "n3"], set()).value["grudge"] == "split-voters"
