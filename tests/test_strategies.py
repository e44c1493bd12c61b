"""Hypothesis strategies for fault schedules: every drawn schedule is one the nemesis accepts, in time order,
each fault healed, and a failing schedule shrinks to a handful of faults."""

from __future__ import annotations

from hypothesis import find, given, settings
from hypothesis import strategies as st

from nemesis.core import validate_op
from nemesis.registry import family
from nemesis.strategies import (
    KNOWN,
    fault_schedules,
    schedule_from_yaml,
    schedule_length,
    schedule_to_yaml,
)

NODES = ["n1", "n2", "n3", "n4", "n5"]


@given(fault_schedules(NODES, time_limit=20.0))
def test_every_drawn_schedule_is_valid_ordered_and_healed(schedule):
    assert [op.at for op in schedule] == sorted(op.at for op in schedule)
    assert schedule_length(schedule) <= 20.0
    for op in schedule:
        validate_op(op.op(), NODES)  # raises NemesisOpError for anything the nemesis would refuse
    # Faults come in start/stop pairs of one family, never overlapping.
    for start, stop in zip(schedule[::2], schedule[1::2], strict=True):
        assert start.family == stop.family and (start.f, stop.f)[1] == family(start.family).stop_op
        assert start.at <= stop.at


@given(st.data())
def test_a_family_subset_draws_only_those_families(data):
    fams = data.draw(st.lists(st.sampled_from(KNOWN), min_size=1, unique=True))
    schedule = data.draw(fault_schedules(NODES[:3], families=tuple(fams)))
    assert {op.family for op in schedule} <= set(fams)
    for op in schedule:
        validate_op(op.op(), NODES)


@given(fault_schedules(NODES))
def test_a_schedule_survives_its_yaml_round_trip(schedule):
    assert schedule_from_yaml(schedule_to_yaml(schedule)) == schedule


def test_a_failing_schedule_shrinks_to_the_faults_that_matter():
    # Stand-in for a buggy target: it breaks when its leader is killed after a partition.
    def breaks(schedule):
        fs = [op.f for op in schedule]
        return ("start-partition" in fs and "kill" in fs
                and fs.index("start-partition") < fs.index("kill")
                and any(op.f == "kill" and op.value == {"nodes": ["leader"]} for op in schedule))

    minimal = find(fault_schedules(NODES, max_faults=8), breaks, settings=settings(max_examples=500, database=None, derandomize=True))
    # A handful of faults: the two that matter, at most one bystander (shrinking is a search, not a proof).
    assert breaks(minimal) and len(minimal) <= 6
    assert minimal[0].at == 0.0  # the earliest start
