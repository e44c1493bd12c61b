"""A chaos test written as a pytest test with the splitbrain plugin: hypothesis draws fault schedules,
the `chaos` fixture plays each against a fresh 3-node raftkv and checks it (the example the README shows)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings

from nemesis.strategies import fault_schedules

NODES = ["n1", "n2", "n3"]

pytestmark = pytest.mark.docker


# Two schedules of at most two short faults: the example stays well under two minutes. A user searching
# for a bug raises max_examples; a failure prints the shrunk schedule, its report and how to replay it.
@pytest.mark.chaos(target="raftkv", nodes=3, time_limit=8, concurrency=4, rate=60)
@settings(max_examples=2, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(schedule=fault_schedules(NODES, families=("partition", "kill", "pause"), max_faults=2,
                                max_duration=3.0, max_gap=1.0))
def test_correct_raftkv_stays_linearizable_under_any_drawn_schedule(chaos, schedule):
    result = chaos.run(schedule, seed=1)
    result.assert_valid()
    assert result.report.is_file()
    # A valid verdict over no acknowledged write would prove nothing.
    assert any(o.f == "write" and o.status == "ok" for o in result.history.client_operations())
    assert sum(1 for e in result.history.events if e.process == "nemesis") >= 2 * len(schedule)


@pytest.mark.chaos(target="raftkv", nodes=3)
def test_the_cluster_client_and_nemesis_fixtures_drive_a_live_cluster(chaos_cluster, chaos_client, chaos_nemesis):
    async def write_then_read():
        # Any node may be the leader (or none yet): try each, a few rounds, until one acknowledges.
        wrote = None
        for _ in range(20):
            for node in NODES:
                done = await chaos_client.invoke(node, {"f": "write", "key": "x", "value": 1})
                if done.get("type") == "ok":
                    wrote = node
                    break
            if wrote:
                break
            await asyncio.sleep(0.25)
        read = await chaos_client.invoke(wrote or "n1", {"f": "read", "key": "x"})
        return wrote, read, await chaos_client.status("n1")

    wrote, read, status = asyncio.run(write_then_read())
    # The fixtures drive a live cluster only if a write was acknowledged and reads back.
    assert wrote is not None, "no node acknowledged the write"
    assert read.get("type") == "ok" and read.get("value") == 1, read
    assert status is not None
    killed = chaos_nemesis.invoke({"f": "kill", "value": {"nodes": ["n2"]}})
    assert killed.get("type") != "fail", killed
    assert chaos_cluster.state("n2") != "running"
    chaos_nemesis.invoke({"f": "start", "value": {"nodes": ["n2"]}})
    assert chaos_cluster.state("n2") == "running"


# The README's hand-written schedule, as it is printed there: family constructors, then plain dicts.
@pytest.mark.chaos(target="raftkv", nodes=3, time_limit=7, concurrency=4, rate=60)
def test_the_readmes_hand_written_schedules_play_and_check(chaos):
    from nemesis.partition import PARTITION

    first = chaos.run([PARTITION.start(at=1.0, grudge="isolate-leader"), PARTITION.stop(at=4.0)])
    first.assert_valid()
    second = chaos.run([
        {"at": 1.0, "fault": "partition", "grudge": "isolate-leader", "duration": 3.0},
        {"at": 5.0, "fault": "kill", "nodes": ["leader"]},
        {"at": 6.0, "fault": "kill", "stop": True},
    ])
    second.assert_valid()
    played = [e.f for e in second.history.events if e.process == "nemesis" and e.type != "invoke"]
    assert played[:4] == ["start-partition", "stop-partition", "kill", "start"], played
    # The clients really wrote: a valid verdict over no acknowledged writes would prove nothing.
    assert second.results["stats"]["ok"] > 0
    assert any(o.f == "write" and o.status == "ok" for o in second.history.client_operations())
