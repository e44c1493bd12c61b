"""Any fault schedule, however odd, gives a valid history that ends healed: schedules as hypothesis strategies."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.memory import NODES, MemoryClient, MemoryCluster, MemoryNemesis
from harness.run import RunLoop
from harness.spec import TestSpec
from history.events import read_history
from nemesis.schedule import LEADER, ScheduledOp
from workloads.base import make_workload

victims = st.lists(st.sampled_from(NODES + [LEADER]), min_size=1, max_size=2, unique=True)
node_fault = st.builds(lambda f, nodes: (f, {"nodes": nodes}), st.sampled_from(["kill", "pause"]), victims)
node_heal = st.builds(lambda f, nodes: (f, {"nodes": nodes}), st.sampled_from(["start", "resume"]), victims)
partition = st.sampled_from(["halves", "isolate-leader", "one-way"]).map(
    lambda g: ("start-partition", {"grudge": g, "seed": 1}))
stop_partition = st.just(("stop-partition", None))
fault_op = st.one_of(node_fault, node_heal, partition, stop_partition)
FAMILY = {"kill": "kill", "start": "kill", "pause": "pause", "resume": "pause",
          "start-partition": "partition", "stop-partition": "partition"}


@st.composite
def schedules(draw):
    ops = draw(st.lists(fault_op, max_size=6))
    return [ScheduledOp(round(0.1 * (i + 1), 2), FAMILY[f], f, v) for i, (f, v) in enumerate(ops)]


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(schedule=schedules(), seed=st.integers(0, 1000))
def test_any_schedule_gives_a_valid_history_that_ends_healed(schedule, seed):
    spec = TestSpec(target="fake", nodes=3, workload="register", nemesis=("kill", "pause", "partition"),
                    time_limit=0.7, concurrency=4, rate=200, seed=seed, warmup=0.05, recovery_limit=2,
                    op_timeout=0.1, ops_per_key=20).resolve()
    cluster = MemoryCluster()
    nemesis = MemoryNemesis(cluster)
    with tempfile.TemporaryDirectory() as tmp:
        history_path = Path(tmp) / "history.jsonl"
        loop = RunLoop(spec, cluster, lambda ips: MemoryClient(cluster), lambda ips: nemesis,
                       make_workload("register", seed, keys=2, ops_per_key=20), schedule, history_path)
        outcome = loop.run()
        history = read_history(history_path)
    assert outcome.infra_error is None
    assert [op["f"] for op in nemesis.ops] == [s.f for s in schedule]
    for op in nemesis.ops:  # the loop resolved the symbolic leader to a node
        assert LEADER not in ((op.get("value") or {}).get("nodes") or [])
    assert not cluster.down and not cluster.paused and cluster.torn_down == 1
    assert history.nemesis_events()[-1].f == "heal"
    assert outcome.recovered is True
