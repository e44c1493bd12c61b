"""The fault schedule: the same seed gives the same plan; every fault started is stopped; faults mix."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nemesis.registry import family
from nemesis.schedule import LEADER, make_schedule

NODES = ["n1", "n2", "n3", "n4", "n5"]
ALL = ["partition", "kill", "pause", "clock", "loss"]


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another():
    a = make_schedule(42, ALL, NODES, 5, 60)
    assert a == make_schedule(42, ALL, NODES, 5, 60)
    assert a != make_schedule(43, ALL, NODES, 5, 60)


def test_ops_come_every_interval_within_the_time_limit_and_end_healed():
    plan = make_schedule(1, ALL, NODES, 5, 60)
    times = [s.at for s in plan]
    assert times == sorted(times) and times[0] == 5 and max(times) <= 60
    assert all(s.at % 5 == 0 for s in plan if not s.follows)


def test_some_kills_are_bounces_that_restart_within_a_second():
    plan = make_schedule(4, ["kill"], NODES, 5, 600)
    bounces = [(a, b) for a, b in zip(plan, plan[1:], strict=False) if b.follows]
    assert bounces and all(a.f == "kill" and b.f == "start" and 0 < b.at - a.at <= 1 for a, b in bounces)
    assert any(not s.follows and s.f == "start" for s in plan)  # and some kills last an interval


def test_no_fault_and_no_interval_mean_no_schedule():
    assert make_schedule(1, [], NODES, 5, 60) == []
    assert make_schedule(1, ["kill"], NODES, 0, 60) == []


def test_a_long_schedule_mixes_every_chosen_fault():
    plan = make_schedule(9, ALL, NODES, 2, 600)
    assert {s.family for s in plan} == set(ALL)
    starts = {s.f for s in plan}
    assert {"start-partition", "kill", "pause", "start-loss"} <= starts
    assert {"bump-clock", "strobe-clock"} & starts


faults = st.lists(st.sampled_from(ALL), min_size=1, max_size=5, unique=True)
nodes = st.integers(min_value=2, max_value=7).map(lambda n: [f"n{i}" for i in range(1, n + 1)])


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**31), faults=faults, nodes=nodes,
       interval=st.sampled_from([1, 2.5, 5]), limit=st.sampled_from([5, 20, 60]))
def test_every_started_fault_is_stopped_and_kills_and_pauses_hit_a_minority(seed, faults, nodes, interval, limit):
    plan = make_schedule(seed, faults, nodes, interval, limit)
    active: dict[str, object] = {}
    for step in plan:
        if step.f == family(step.family).stop_op:
            assert step.family in active, f"{step.f} without a start"
            started = active.pop(step.family)
            if step.family in ("kill", "pause"):
                assert step.value["nodes"] == started["nodes"]  # restart what was killed
        else:
            assert step.family not in active, f"{step.family} started twice"
            active[step.family] = step.value
            if step.family in ("kill", "pause"):
                victims = step.value["nodes"]
                assert victims == [LEADER] or 1 <= len(victims) <= max(1, (len(nodes) - 1) // 2)
                others = {n for f, v in active.items() if f in ("kill", "pause") and f != step.family for n in v["nodes"]}
                assert not (set(victims) & others), "two node faults on one node at once"
    assert not active, "a fault was left on at the end"


def test_the_slow_leader_family_slows_the_current_leaders_clock_and_resets_it():
    from nemesis.clock import SLOW_LEADER, SLOW_LEADER_RATE

    name = "nemesis.clock:SLOW_LEADER"
    assert family(name) is SLOW_LEADER and SLOW_LEADER.hits_leader("bump-clock")
    plan = make_schedule(3, [name], ["n1", "n2", "n3", "n4", "n5"], 5, 40)
    assert {s.f for s in plan} == {"bump-clock", "reset-clock"}  # a subclass keeps the clock's start and stop
    assert all(s.value == {"nodes": ["leader"], "delta_ms": 0, "rate": SLOW_LEADER_RATE}
               for s in plan if s.f == "bump-clock")
    assert 50 / SLOW_LEADER_RATE < 150  # raftkv's heartbeat, slowed, stays below its shortest election timeout
