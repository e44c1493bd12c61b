"""A fault family from outside splitbrain: defined here, registered, scheduled, verified, healed and drawn in the report.

"brownout" makes a node refuse every client request while it stays up and
keeps leading. Nothing in splitbrain knows it: the registry hands it to the
spec, the schedule, the nemesis, the runner and the report.
"""

from __future__ import annotations

import io
import json

import pytest

from checkers.election import check
from harness.commands.run import execute
from harness.memory import NODES, MemoryClient, MemoryCluster
from harness.pytest_plugin import run_schedule
from harness.spec import TestSpec, check_spec
from history.events import read_history
from nemesis.core import Nemesis
from nemesis.errors import NemesisError
from nemesis.family import Draw, FaultContext, NodeFamily, minority
from nemesis.registry import FAULT_FAMILIES
from nemesis.schedule import ScheduleError, make_schedule, parse_schedule
from reports.data import load_run, report_data


class _Brownouts:
    """The injector: what this family has done to one cluster."""

    def __init__(self, ctx: FaultContext):
        self.ctx = ctx
        self.nodes: list[str] = []

    def _set(self, nodes: list[str], on: bool) -> dict:
        for n in nodes:
            self.ctx.cluster.exec(n, ["brownout", "on" if on else "off"])
        seen = {n: self.ctx.cluster.probe(n)["brownout"] for n in nodes}
        if any(v != on for v in seen.values()):
            raise NemesisError(f"brownout did not take effect: {seen}")
        return {"verified": True, "brownout": seen}

    def invoke(self, op):
        if op["f"] == "stop-brownout":
            nodes, self.nodes = self.nodes, []
            return nodes, self._set(nodes, False)
        nodes, notes = self.ctx.resolve(op["nodes"], list(self.ctx.cluster.node_ids))
        self.nodes = sorted(set(self.nodes) | set(nodes))
        return nodes, {**self._set(nodes, True), **notes}

    def current(self):
        return [f"brownout:{n}" for n in self.nodes]

    def reapply(self, node):
        return None

    def after_restart(self, nodes, evidence):
        return {}

    def heal(self):
        return {"stop-brownout": self.invoke({"f": "stop-brownout"})[1]} if self.nodes else {}


class BrownoutFamily(NodeFamily):
    name = "brownout"
    ops = ("start-brownout", "stop-brownout")  # its start and its stop (and any others)
    heal_rank = 45

    def injector(self, ctx):
        return _Brownouts(ctx)

    def draw(self, rng, nodes, busy, target=None):
        return Draw(self.start_op, {"nodes": minority(rng, nodes)})

    def label(self, f, value):
        return "brownout (refuses clients)"


BROWNOUT = BrownoutFamily()


class MemoryCluster(MemoryCluster):
    """test_run_loop's in-memory cluster, driven through the nemesis's ClusterControl."""

    node_ids = list(NODES)
    ips = {n: f"10.0.0.{i}" for i, n in enumerate(NODES, 11)}
    layout = None

    def __init__(self):
        super().__init__()
        self.brownout: set[str] = set()
        self.execs: list[tuple[str, list[str]]] = []

    def states(self):
        return {n: "paused" if n in self.paused else "exited" if n in self.down else "running" for n in NODES}

    def state(self, node):
        return self.states()[node]

    def exit_codes(self):
        return {n: 137 if n in self.down else None for n in NODES}

    def kill(self, node):
        self.down.add(node)

    def start(self, node):
        self.down.discard(node)

    def pause(self, node):
        self.paused.add(node)

    def resume(self, node):
        self.paused.discard(node)

    def exec(self, node, cmd, timeout=None):
        self.execs.append((node, cmd))
        if cmd[0] == "brownout":
            (self.brownout.add if cmd[1] == "on" else self.brownout.discard)(node)
        return 0, ""

    def exec_netns(self, node, cmd):
        return 0, "0\n0\n0\n"  # the final check's sweeps: nothing left over

    def exec_detached(self, node, cmd):
        pass

    def put_file(self, node, path, data):
        pass

    write_file = put_file

    def probe(self, node, timeout=0.5):
        if node in self.down or node in self.paused:
            return None
        leader = self.leader()
        return {"role": "leader" if node == leader else "follower", "term": max(self.term, 1), "leader": leader,
                "brownout": node in self.brownout}

    def probe_some(self, nodes, timeout=0.5):
        return {n: self.probe(n) for n in nodes}

    def probe_all(self, timeout=0.5):
        return self.probe_some(NODES)

    def wait_serving(self, nodes, timeout):
        return [n for n in nodes if self.probe(n) is None]

    def set_failpoint(self, node, name, on):
        return False


class BrownoutClient(MemoryClient):
    async def invoke(self, node, op):
        if node in self.c.brownout:
            return {"type": "fail", "value": None, "error": "503 brownout"}
        return await super().invoke(node, op)


class MemoryTarget:
    name = "memory"
    peer_port = 1

    def clock_control(self):
        return None

    def unsupported_faults(self, faults):
        return []


def memory_parts(cluster: MemoryCluster):
    def parts(spec, target, log):
        return (cluster, list(NODES), lambda ips: BrownoutClient(cluster),
                lambda ips: Nemesis(cluster, MemoryTarget(), list(spec.nemesis)))
    return parts


def spec(tmp_path, **kw) -> TestSpec:
    base = dict(target="memory", nodes=3, workload="register", nemesis=("brownout",), time_limit=1.2,
                concurrency=4, rate=300, seed=5, nemesis_interval=0.3, warmup=0.2, recovery_limit=3,
                op_timeout=0.2, ops_per_key=30, store=str(tmp_path / "store"))
    base.update(kw)
    return TestSpec(**base).resolve()


@pytest.fixture
def brownout():
    with FAULT_FAMILIES.registered("brownout", BROWNOUT):
        yield BROWNOUT


def test_a_registered_family_is_drawn_verified_healed_and_banded_in_the_report(tmp_path, brownout):
    cluster = MemoryCluster()
    s = spec(tmp_path)
    check_spec(s)  # the spec knows it from the registry
    # Left on at the end: the heal must undo it. Written by hand with the family's constructors.
    schedule = [brownout.start(at=0.1, nodes=["n2"]), brownout.stop(at=0.4),
                {"at": 0.6, "fault": "brownout", "nodes": ["leader"]}]
    result = run_schedule(s, schedule, parts=memory_parts(cluster), target=MemoryTarget())
    assert result.valid is True, result.explain()

    nemesis = [e for e in read_history(result.run_dir / "history.jsonl").nemesis_events() if e.type != "invoke"]
    first = next(e for e in nemesis if e.f == "start-brownout")
    assert first.value == ["n2"] and first.extra["evidence"]["verified"] is True  # verified by its own probe
    assert first.extra["fault"] == {"family": "brownout", "nodes": ["n2"]}  # facts for the checker, as data
    heal = next(e for e in nemesis if e.f == "heal")
    assert "stop-brownout" in heal.value and heal.extra["evidence"]["stop-brownout"]["brownout"] == {"n1": False}
    assert cluster.brownout == set() and ("n1", ["brownout", "off"]) in cluster.execs

    bands = [b for b in report_data(load_run(result.run_dir))["faults"] if b["family"] == "brownout"]
    assert [(b["label"], b["nodes"]) for b in bands] == [("brownout (refuses clients)", ["n2"]),
                                                        ("brownout (refuses clients)", ["n1"])]
    assert "brownout (refuses clients)" in result.report.read_text()


def test_the_seeded_schedule_draws_a_registered_family_and_a_run_plays_it(tmp_path, brownout):
    plan = make_schedule(5, ["brownout", "kill"], NODES, 0.3, 1.2)
    assert {op.f for op in plan} >= {"start-brownout", "stop-brownout"}
    cluster = MemoryCluster()
    code = execute(spec(tmp_path), MemoryTarget(), quiet=True, out=io.StringIO(), parts=memory_parts(cluster))
    assert code == 0
    results = json.loads((tmp_path / "store" / "latest" / "results.json").read_text())
    assert results["run"]["nemesis_ops"] > 2 and cluster.brownout == set()


def test_a_hand_written_schedule_is_checked_entry_by_entry_with_one_line(brownout):
    ok = parse_schedule([{"at": 2, "fault": "partition", "grudge": "halves", "duration": 1.5},
                         {"at": 1, "fault": "kill", "nodes": ["leader"]}, {"at": 1.5, "fault": "kill", "stop": True}],
                        NODES)
    assert [(op.at, op.f) for op in ok] == [(1, "kill"), (1.5, "start"), (2, "start-partition"),
                                            (3.5, "stop-partition")]
    for bad, why in [({"at": 1, "fault": "partiton"}, "unknown fault family 'partiton'"),
                     ({"fault": "kill", "nodes": ["n1"]}, "'at' must be a number"),
                     ({"at": 1, "fault": "partition", "grudge": "triangle"}, "unknown grudge 'triangle'"),
                     ({"at": 1, "fault": "brownout", "nodes": ["n9"]}, "unknown node 'n9'")]:
        with pytest.raises(ScheduleError) as e:
            parse_schedule([{"at": 0, "fault": "kill", "nodes": ["n1"]}, bad], NODES)
        assert str(e.value).startswith("schedule entry 2 (") and why in str(e.value) and "\n" not in str(e.value)


def test_strobe_is_refused_before_the_run_for_a_libfaketime_target_and_never_drawn_for_one():
    from targets.base import FAKETIME

    class Faketime(MemoryTarget):
        name = "faketimed"

        def clock_control(self):
            return FAKETIME

    with pytest.raises(ScheduleError, match="strobe-clock needs a target that reads a clock file"):
        parse_schedule([{"at": 1, "fault": "clock", "f": "strobe-clock", "value": {"nodes": ["n1"]}}], NODES, Faketime())
    for seed in range(30):
        plan = make_schedule(seed, ["clock"], NODES, 1.0, 30.0, target=Faketime())
        assert plan and "strobe-clock" not in {op.f for op in plan}


def test_the_checker_reads_a_completions_own_facts_without_any_registry():
    def obs(t, node, role, term):
        return {"process": "observer", "type": "ok", "f": "status", "node": node, "time": t * 10**6,
                "value": {"role": role, "term": term, "leader": node if role == "leader" else None}}

    events = [obs(0, "n1", "leader", 1), obs(0, "n2", "follower", 1),
              {"process": "nemesis", "type": "info", "f": "start-brownout", "time": 50 * 10**6, "value": ["n1"],
               "fault": {"family": "brownout", "nodes": ["n1"], "leader_nodes": ["n1"]}},
              obs(100, "n2", "leader", 2)]
    [failover] = check(events, [])["timeline"]["failovers"]
    assert (failover["fault"], failover["old_leader"], failover["new_leader"]) == ("start-brownout", "n1", "n2")
