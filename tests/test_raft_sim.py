"""The raftkv simulator: generated fault schedules against the correct node, and proof
that each deliberate bug is caught by the simulator's checks for some schedule."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from targets.raftkv.node import BUGS
from targets.raftkv.sim import Fault, SimConfig, random_schedule, run

DURATION = 2500


def faults(nodes: int, skews=(50, 80, 100, 150)) -> st.SearchStrategy[Fault]:
    node = st.integers(0, nodes - 1)
    at = st.integers(0, DURATION - 1)
    down = st.integers(1, 50)
    return st.one_of(
        st.builds(lambda t, side: Fault(t, "partition", tuple(sorted(side))), at,
                  st.sets(node, min_size=1, max_size=nodes // 2)),
        st.builds(lambda t, i: Fault(t, "isolate", (i,)), at, node),
        st.builds(lambda t: Fault(t, "isolate-leader"), at),
        st.builds(lambda t: Fault(t, "heal"), at),
        st.builds(lambda t, i: Fault(t, "crash", (i,)), at, node),
        st.builds(lambda t, i: Fault(t, "restart", (i,)), at, node),
        st.builds(lambda t, i, d: Fault(t, "bounce", (i, d)), at, node, down),
        st.builds(lambda t, i, d: Fault(t, "bounce-after-vote", (i, d)), at, node, down),
        st.builds(lambda t, i, d: Fault(t, "bounce-before-send", (i, d)), at, node, down),
        st.builds(lambda t, d: Fault(t, "bounce-leader", (d,)), at, down),
        st.builds(lambda t, i, d: Fault(t, "pause", (i, d)), at, node, st.sampled_from([50, 200, 1000])),
        st.builds(lambda t, d: Fault(t, "pause-leader", (d,)), at, st.sampled_from([50, 200, 1000])),
        st.builds(lambda t, d, w: Fault(t, "bounce-first-writes", (d, w)), at,
                  st.sampled_from([100, 200, 300]), st.sampled_from([500, 1000])),
        st.builds(lambda t, a, b, d: Fault(t, "slow", (a, b, d)), at, node, node,
                  st.sampled_from([0, 50, 100, 200])),
        st.builds(lambda t, p: Fault(t, "drop", (p,)), at, st.sampled_from([0, 5, 20, 50])),
        st.builds(lambda t, i: Fault(t, "transfer", (i,)), at, node),
        st.builds(lambda t, i, r: Fault(t, "skew", (i, r)), at, node, st.sampled_from(skews)),
    )


def schedules(nodes: int, **kw) -> st.SearchStrategy[list[Fault]]:
    return st.lists(faults(nodes, **kw), max_size=20)


def assert_safe(cfg: SimConfig, seed: int, schedule: list[Fault]) -> None:
    result = run(cfg, seed, schedule)
    assert result.ok, f"seed {seed}: {result.violations[0]}\nschedule: {schedule}"
    assert result.recovered_after is not None


# ---- the correct node keeps every invariant --------------------------------------


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 2**16), schedule=schedules(3))
def test_three_nodes_keep_raft_safety_and_recover_under_generated_faults(seed, schedule):
    assert_safe(SimConfig(nodes=3, duration=DURATION), seed, schedule)


@settings(max_examples=15, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 2**16), schedule=schedules(5))
def test_five_nodes_with_frequent_snapshots_keep_raft_safety_under_generated_faults(seed, schedule):
    assert_safe(SimConfig(nodes=5, duration=DURATION, snapshot_every=10), seed, schedule)


@settings(max_examples=15, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 2**16), schedule=schedules(3, skews=(90, 100, 110)))
def test_lease_reads_stay_linearizable_while_clock_drift_stays_within_the_margin(seed, schedule):
    assert_safe(SimConfig(nodes=3, duration=DURATION, lease_reads=True), seed, schedule)


def test_the_same_seed_and_schedule_replay_the_same_history():
    cfg = SimConfig(duration=1500)
    schedule = random_schedule(random.Random(7), cfg, 10)
    first, second = run(cfg, 7, schedule), run(cfg, 7, schedule)
    assert first.history == second.history and first.events == second.events
    assert len(first.history) > 30


def test_after_healing_a_majority_crash_and_a_partition_a_write_commits_within_the_bound():
    cfg = SimConfig(duration=1500, liveness_bound=2000)
    schedule = [Fault(300, "crash", (0,)), Fault(350, "crash", (1,)), Fault(400, "isolate", (2,))]
    result = run(cfg, 1, schedule)
    assert result.ok, result.violations
    assert result.recovered_after is not None and result.recovered_after <= 2000


def test_an_acknowledged_write_survives_a_leader_crash():
    cfg = SimConfig(duration=2000)
    result = run(cfg, 3, [Fault(500, "isolate-leader"), Fault(900, "heal"), Fault(1200, "bounce", (0, 30))])
    assert result.ok, result.violations
    assert any(e["type"] == "ok" and e["f"] == "put" for e in result.history)


# ---- forwarding while leadership moves ----------------------------------------------


def leader_changes(nodes: int) -> st.SearchStrategy[list[Fault]]:
    at = st.integers(0, DURATION - 1)
    return st.lists(st.one_of(
        st.builds(lambda t, i: Fault(t, "transfer", (i,)), at, st.integers(0, nodes - 1)),
        st.builds(lambda t: Fault(t, "isolate-leader"), at),
        st.builds(lambda t, d: Fault(t, "bounce-leader", (d,)), at, st.integers(1, 50)),
        st.builds(lambda t, d: Fault(t, "pause-leader", (d,)), at, st.sampled_from([50, 200, 1000])),
        st.builds(lambda t: Fault(t, "heal"), at),
    ), min_size=1, max_size=12)


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 2**16), schedule=leader_changes(3))
def test_requests_forwarded_while_leadership_moves_are_answered_as_they_happened(seed, schedule):
    # Clients talk to any node, so most requests are forwarded; the checks include
    # that no acknowledged write is lost, no read is stale and no failed write was applied.
    result = run(SimConfig(nodes=3, duration=DURATION, clients=4), seed, schedule)
    assert result.ok, f"seed {seed}: {result.violations[0]}\nschedule: {schedule}"
    assert result.forwards > 0 and result.recovered_after is not None


def test_a_forwarder_that_calls_an_applied_write_failed_is_caught(monkeypatch):
    from targets.raftkv.node import RaftKVNode

    relay = RaftKVNode._reply

    def lying(self, handle, status, body):
        if status == 200 and "served_by" in body and "value" not in body:
            status, body = 503, {"error": "not-leader", "leader": None}  # a write that happened
        relay(self, handle, status, body)

    monkeypatch.setattr(RaftKVNode, "_reply", lying)
    cfg = SimConfig(duration=1500)
    result = run(cfg, 1, random_schedule(random.Random(1), cfg, 3))
    assert [v.kind for v in result.violations] == ["failed-write-applied"]


# ---- each deliberate bug is caught ------------------------------------------------

# For each bug: the simulation settings and fault kinds whose schedules reach the
# window the bug needs, how many seeded schedules to try, and what catches it.
BUG_HUNTS = {
    "stale-read": (dict(), ("isolate", "partition", "heal"), 6, 40, {"stale-read"}),
    "no-persist-vote": (
        # Two candidates in one term, and a voter that dies right after voting.
        dict(nodes=5, clients=0, election_timeout=(150, 150), max_delay=40),
        ("bounce-after-vote", "slow", "bounce"), 30, 150, {"election-safety"},
    ),
    "commit-old-term": (
        # Figure 8: leaders that die at their first client entry, one after another.
        dict(clients=4, keys=1, request_timeout=300),
        ("bounce-first-writes",), 2, 60,
        {"leader-completeness", "state-machine-safety", "stale-read", "lost-write"},
    ),
    "ack-before-replicate": (
        dict(), ("isolate-leader", "partition", "bounce", "heal"), 6, 40, {"lost-write", "stale-read"},
    ),
    "lease-no-checkquorum": (
        dict(clients=4, keys=1, request_timeout=300, lease_reads=True),
        ("isolate-leader",), 3, 60, {"stale-read"},
    ),
    "read-index-no-confirm": (
        # CheckQuorum deposes an isolated leader within two election timeouts; a slow clock on that
        # leader stretches the window in which it still serves unconfirmed reads past a new leader's writes.
        dict(clients=8, keys=1, request_timeout=300),
        ("skew-leader", "isolate-leader"), 16, 30, {"stale-read"},
    ),
    "truncate-on-append": (
        # The simulator's network reorders and duplicates messages: a late append cuts the log. Or the
        # cluster stops committing (liveness, seed 1): the leader still counts the entries the follower cut
        # (its match index) and takes the follower's refusals below it as stale. The correct node shows
        # neither on the same schedules.
        dict(), ("isolate-leader", "partition", "bounce", "heal"), 6, 40,
        {"leader-completeness", "divergence", "state-machine-safety", "lost-write", "stale-read", "liveness"},
    ),
    # Membership changes in 4 nodes, and partitions that split the voters the leader names
    # (split-voters): 3 voters and the node just removed split {leader, removed} | {two voters}.
    "count-removed": (
        dict(nodes=4), ("member-cycle", "split-voters", "heal"), 12, 40,
        {"leader-completeness", "state-machine-safety", "lost-write", "stale-read", "divergence"},
    ),
    # ... and 4 voters just made from 3 split 2 | 2, which the old configuration's quorum of 2 takes for a majority.
    "stale-majority": (
        dict(nodes=4), ("member-cycle", "split-voters", "heal"), 6, 40,
        {"leader-completeness", "state-machine-safety", "lost-write", "stale-read", "divergence"},
    ),
}


# Tick periods the hunts' skews draw from, per bug (default: the schedule's own).
HUNT_SKEWS = {"read-index-no-confirm": (400,)}
DEFAULT_SKEWS = (50, 80, 100, 150)


def hunt(bugs: frozenset[str], settings_: dict, kinds, faults_: int, seeds: int, skews=DEFAULT_SKEWS):
    """The first violation over seeded schedules, or None."""
    cfg = SimConfig(bugs=bugs, duration=3000, **settings_)
    for seed in range(seeds):
        result = run(cfg, seed, random_schedule(random.Random(seed), cfg, faults_, kinds, skews))
        if not result.ok:
            return seed, result.violations[0]
    return None


# Bugs below the node, which the simulator cannot reach: its nodes persist a Ready exactly, in memory.
BELOW_THE_NODE = {
    # Storage skips fsync: only a crash that loses unsynced writes shows it (tests/test_disk_docker.py).
    "no-fsync",
    # A bug of the transport, which the simulator does not have: the impostor fault catches it
    # (tests/test_impostor_cluster.py).
    "no-peer-auth",
}


def test_every_deliberate_bug_has_a_hunt():
    assert set(BUG_HUNTS) | BELOW_THE_NODE == set(BUGS)
    assert not set(BUG_HUNTS) & BELOW_THE_NODE


@pytest.mark.parametrize("bug", sorted(BUG_HUNTS))
def test_the_simulator_catches_the_bug(bug):
    settings_, kinds, faults_, seeds, caught_by = BUG_HUNTS[bug]
    found = hunt(frozenset({bug}), settings_, kinds, faults_, seeds, HUNT_SKEWS.get(bug, DEFAULT_SKEWS))
    assert found is not None, f"{bug}: no violation in {seeds} schedules"
    seed, violation = found
    assert violation.kind in caught_by, (seed, violation)


@pytest.mark.parametrize("bug", sorted(BUG_HUNTS))
def test_the_same_hunt_finds_nothing_without_the_bug(bug):
    # The checks must not cry wolf: the correct node passes the hunt's first schedules.
    settings_, kinds, faults_, _, _ = BUG_HUNTS[bug]
    assert hunt(frozenset(), settings_, kinds, faults_, 8, HUNT_SKEWS.get(bug, DEFAULT_SKEWS)) is None


def test_the_command_line_reports_a_clean_run_with_exit_0(capsys):
    from targets.raftkv.sim import main

    assert main(["--seed", "3", "--duration", "1000", "--faults", "5"]) == 0
    assert "all safety and client-visible checks passed" in capsys.readouterr().out


def test_the_command_line_hunts_a_bug_and_exits_1(capsys):
    from targets.raftkv.sim import main

    assert main(["--bug", "ack-before-replicate", "--hunt", "20", "--faults", "6",
                 "--kinds", "isolate-leader,partition,bounce,heal"]) == 1
    assert "VIOLATION" in capsys.readouterr().out
