"""Grudges: who cannot hear whom in a partition, computed as graphs with networkx.

A grudge maps each node to the set of nodes it drops packets from. It is
derived from a *connectivity* graph: an undirected edge means two nodes hear
each other; a node holds a grudge against every node it has no edge to.
One-way partitions are directed: A drops B's packets while B still takes A's.

Pure functions of (nodes, rng[, leader]); the partition nemesis turns a grudge
into iptables rules.
"""

from __future__ import annotations

import random

import networkx as nx

Grudge = dict[str, frozenset[str]]

GRUDGES = (
    "halves",
    "random-halves",
    "isolate-one",
    "isolate-leader",
    "majorities-ring",
    "bridge",
    "one-way",
)
# Grudges aimed at the cluster's configuration, never drawn by the plain partition family (so every seed's
# schedule stays what it was): named in a hand-written schedule, or drawn by nemesis.partition:SPLIT_VOTERS.
AIMED_GRUDGES = ("split-voters",)


class GrudgeError(ValueError):
    """A grudge that cannot be formed for these nodes (e.g. a bridge of two)."""


def from_connectivity(g: nx.Graph) -> Grudge:
    """Each node drops every node it has no edge to."""
    nodes = list(g.nodes)
    return {n: frozenset(m for m in nodes if m != n and not g.has_edge(n, m)) for n in nodes}


def from_components(nodes: list[str], components: list[list[str]]) -> Grudge:
    g = nx.Graph()
    g.add_nodes_from(nodes)
    for comp in components:
        g.add_edges_from((a, b) for i, a in enumerate(comp) for b in comp[i + 1:])
    return from_connectivity(g)


def halves(nodes: list[str]) -> Grudge:
    """First half (the smaller, for odd sizes) against the rest, in node order."""
    k = len(nodes) // 2
    return from_components(nodes, [nodes[:k], nodes[k:]])


def random_halves(nodes: list[str], rng: random.Random) -> Grudge:
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    return halves(shuffled)


def isolate(nodes: list[str], node: str) -> Grudge:
    if node not in nodes:
        raise GrudgeError(f"cannot isolate {node!r}: not one of {nodes}")
    return from_components(nodes, [[node], [n for n in nodes if n != node]])


def majorities_ring(nodes: list[str], rng: random.Random | None = None) -> Grudge:
    """Every node hears a majority (itself included) and no two nodes hear the same majority.

    Nodes sit on a ring (in a random order when rng is given) and each hears
    the window of `majority` consecutive nodes around itself. Windows that
    start at different places of a ring shorter than it are different sets,
    so no two nodes share a majority. For odd sizes the windows are centred
    and hearing is mutual (5 nodes: each hears its two ring neighbours); for
    even sizes and for 3 nodes a window leans one way, so hearing is directed,
    which is why the hearing graph is a networkx DiGraph.
    """
    n = len(nodes)
    if n < 3:
        raise GrudgeError(f"a majorities ring needs at least 3 nodes, got {n}")
    order = list(nodes)
    if rng is not None:
        rng.shuffle(order)
    majority = n // 2 + 1
    behind = (majority - 1) // 2
    hearing = nx.DiGraph()  # edge a -> b: a hears b
    hearing.add_nodes_from(order)
    for i, node in enumerate(order):
        for step in range(-behind, majority - behind):
            hearing.add_edge(node, order[(i + step) % n])
    return {a: frozenset(b for b in order if b != a and not hearing.has_edge(a, b)) for a in order}


def bridge(nodes: list[str], rng: random.Random | None = None) -> Grudge:
    """Two halves that cannot hear each other, plus one node that hears both (Jepsen's bridge)."""
    if len(nodes) < 3:
        raise GrudgeError(f"a bridge needs at least 3 nodes, got {len(nodes)}")
    order = list(nodes)
    if rng is not None:
        rng.shuffle(order)
    k = len(order) // 2
    middle = order[k]
    left, right = order[:k], order[k + 1:]
    return from_components(nodes, [left + [middle], right + [middle]])


def one_way(nodes: list[str], rng: random.Random | None = None) -> Grudge:
    """A minority drops every packet from the majority; the majority still hears the minority.

    Asymmetric: messages from the minority to the majority arrive, replies do not.
    """
    if len(nodes) < 2:
        raise GrudgeError("a one-way partition needs at least 2 nodes")
    order = list(nodes)
    if rng is not None:
        rng.shuffle(order)
    k = max(1, (len(order) - 1) // 2)
    deaf, rest = order[:k], order[k:]
    grudge: Grudge = {n: frozenset() for n in nodes}
    for d in deaf:
        grudge[d] = frozenset(rest)
    return grudge


def split_voters(nodes: list[str], rng: random.Random, leader: str | None, voters: list[str] | None) -> Grudge:
    """The leader, the smaller half of the voters (an exact half of an even number) and every node outside
    the configuration on one side; the other voters on the other.

    Right after a membership change this cuts a majority of one configuration from a majority of the
    other, which a correct single-server change makes impossible to act on: 3 voters and a node just
    removed split {leader, removed} | {two voters}; 4 voters just made from 3 split 2 | 2. A store that
    counts the removed node, or sizes its quorum by the old configuration, then has a leader on each side.
    Without a leader, a random voter stands in; without voters (a target that does not say), every node is one.
    """
    nodes = list(nodes)
    voters = [v for v in (voters or nodes) if v in nodes] or nodes
    if leader not in nodes:
        leader = rng.choice(voters)
    others = [v for v in voters if v != leader]
    rng.shuffle(others)
    k = len(voters) // 2 - (1 if leader in voters else 0)
    side = [leader] + others[:max(0, k)] + [n for n in nodes if n not in voters and n != leader]
    rest = [n for n in nodes if n not in side]
    if not rest:
        raise GrudgeError(f"split-voters: nobody left opposite {side} (voters {voters})")
    return from_components(nodes, [side, rest])


def compute(name: str, nodes: list[str], rng: random.Random, leader: str | None = None,
            voters: list[str] | None = None) -> Grudge:
    """The grudge called name over nodes; isolate-leader needs the current leader, split-voters also the voters."""
    nodes = list(nodes)
    if name == "split-voters":
        return split_voters(nodes, rng, leader, voters)
    if name == "halves":
        return halves(nodes)
    if name == "random-halves":
        return random_halves(nodes, rng)
    if name == "isolate-one":
        return isolate(nodes, rng.choice(nodes))
    if name == "isolate-leader":
        if leader is None:
            raise GrudgeError("isolate-leader: no node currently claims to lead")
        return isolate(nodes, leader)
    if name == "majorities-ring":
        return majorities_ring(nodes, rng)
    if name == "bridge":
        return bridge(nodes, rng)
    if name == "one-way":
        return one_way(nodes, rng)
    raise GrudgeError(f"unknown grudge {name!r}; known: {', '.join(GRUDGES + AIMED_GRUDGES)}")


def hears(grudge: Grudge, node: str) -> frozenset[str]:
    """The nodes whose packets node accepts, itself included."""
    return frozenset(n for n in grudge if n not in grudge[node])


def blocked_pairs(grudge: Grudge) -> list[tuple[str, str]]:
    """(receiver, sender) for every dropped direction, sorted."""
    return sorted((dst, src) for dst, srcs in grudge.items() for src in srcs)


def describe(grudge: Grudge) -> dict[str, list[str]]:
    """JSON-able form: node -> sorted list of nodes it drops."""
    return {n: sorted(s) for n, s in sorted(grudge.items()) if s}


def cut_off(drops: dict) -> tuple[str, ...]:
    """Nodes that a partition leaves without a majority to talk to both ways.

    `drops` maps each node to the nodes whose packets it drops (a grudge, or
    its `describe` form). A leader among these nodes cannot commit anything,
    so the fault hit it.
    """
    nodes = set(drops)
    for cut in drops.values():
        nodes.update(cut)
    hears_both = {n: {m for m in nodes if m != n and m not in drops.get(n, ()) and n not in drops.get(m, ())}
                  for n in nodes}
    majority = len(nodes) // 2 + 1
    return tuple(sorted(n for n in nodes if len(hears_both[n]) + 1 < majority))
