"""The run loop against an in-memory cluster: one complete, valid history; teardown in every case."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
from pathlib import Path

from checkers.composite import check_history
from checkers.verdict import exit_code_for
from harness.run import RunLoop
from harness.spec import TestSpec
from history.events import read_history
from nemesis.schedule import make_schedule
from workloads.base import make_workload

NODES = ["n1", "n2", "n3"]


class FakeCluster:
    """Three in-memory nodes; n1 leads unless it is down, then the lowest live node does."""

    def __init__(self, lose_writes: bool = False):
        self.data: dict = {}
        self.down: set[str] = set()
        self.paused: set[str] = set()
        self.torn_down = 0
        self.logs_copied = 0
        self.lose_writes = lose_writes
        self.term = 0
        self.last_leader = None

    def up(self):
        return {n: f"10.0.0.{i + 1}" for i, n in enumerate(NODES)}

    def leader(self):
        live = [n for n in NODES if n not in self.down and n not in self.paused]
        return live[0] if live else None

    def copy_logs(self, dest: Path):
        self.logs_copied += 1
        (Path(dest) / "n1.log").write_text("fake log\n")

    def teardown(self):
        self.torn_down += 1


class FakeClient:
    def __init__(self, cluster: FakeCluster):
        self.c = cluster

    async def invoke(self, node, op):
        await asyncio.sleep(0.001)
        if node in self.c.down:
            return {"type": "fail", "value": None, "error": "connection refused"}
        if node in self.c.paused:
            await asyncio.sleep(10)
        if node != self.c.leader():
            return {"type": "fail", "value": None, "error": "not-leader"}
        f, key, value = op["f"], op.get("key"), op.get("value")
        if f == "read":
            if key == "set":
                return {"type": "ok", "value": sorted(self.c.data.get("set", set()))}
            return {"type": "ok", "value": self.c.data.get(key)}
        if f == "write":
            self.c.data[key] = value
            return {"type": "ok", "value": value}
        if f == "cas":
            if self.c.data.get(key) != value[0]:
                return {"type": "fail", "value": None, "error": "cas-mismatch"}
            self.c.data[key] = value[1]
            return {"type": "ok", "value": value}
        if f == "add":
            if not (self.c.lose_writes and value % 7 == 0):
                self.c.data.setdefault("set", set()).add(value)
            return {"type": "ok", "value": value}
        return {"type": "fail", "value": None, "error": "unknown op"}

    async def status(self, node):
        if node in self.c.down or node in self.c.paused:
            return None
        leader = self.c.leader()
        if leader != self.c.last_leader:  # a new leader is elected in a new term
            self.c.last_leader, self.c.term = leader, self.c.term + 1
        return {"role": "leader" if node == leader else "follower", "term": self.c.term, "leader": leader,
                "commit_index": 0}


class FakeNemesis:
    def __init__(self, cluster: FakeCluster, broken: bool = False):
        self.c = cluster
        self.broken = broken
        self.ops = []

    def invoke(self, op):
        self.ops.append(op)
        if self.broken:
            raise RuntimeError("kill n2 did nothing: the process is still running")
        nodes = (op.get("value") or {}).get("nodes", []) if isinstance(op.get("value"), dict) else []
        if op["f"] == "kill":
            self.c.down.update(nodes)
        elif op["f"] == "start":
            self.c.down.difference_update(nodes)
        elif op["f"] == "pause":
            self.c.paused.update(nodes)
        elif op["f"] == "resume":
            self.c.paused.difference_update(nodes)
        return {"type": "ok", "value": op.get("value"), "evidence": {"checked": True}}

    def heal_all(self):
        self.c.down.clear()
        self.c.paused.clear()
        return {"type": "ok", "value": "healed"}


def short_spec(**kw) -> TestSpec:
    base = dict(target="fake", nodes=3, workload="register", nemesis=("kill", "pause", "partition"),
                time_limit=1.2, concurrency=5, rate=400, seed=7, nemesis_interval=0.2, warmup=0.2,
                recovery_limit=3, op_timeout=0.2, ops_per_key=30)
    base.update(kw)
    return TestSpec(**base).resolve()


def run_fake(tmp_path, spec, cluster=None, nemesis_broken=False, **kw):
    cluster = cluster or FakeCluster()
    workload = make_workload(spec.workload, spec.seed, keys=spec.active_keys(), ops_per_key=spec.ops_per_key) \
        if spec.workload == "register" else make_workload(spec.workload, spec.seed)
    schedule = make_schedule(spec.seed, spec.nemesis, NODES, spec.nemesis_interval, spec.time_limit)
    logs = tmp_path / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    loop = RunLoop(spec, cluster, lambda nodes: FakeClient(cluster),
                   lambda nodes: FakeNemesis(cluster, nemesis_broken), workload, schedule,
                   tmp_path / "history.jsonl", logs_dir=logs, **kw)
    outcome = loop.run()
    return cluster, workload, outcome


def test_a_run_records_clients_nemesis_and_observer_in_one_valid_history(tmp_path):
    cluster, workload, outcome = run_fake(tmp_path, short_spec())
    assert outcome.infra_error is None, outcome.infra_error
    history = read_history(tmp_path / "history.jsonl")  # raises if the contract is broken
    processes = {e.process for e in history.events}
    assert "nemesis" in processes and "observer" in processes
    ops = history.client_operations()
    assert len(ops) > 200
    assert {o.status for o in ops} >= {"ok", "fail"}
    assert {e.f for e in history.nemesis_events()} >= {"heal"}
    assert outcome.recovered is True
    assert outcome.final_reads["ok"] == outcome.final_reads["ops"] > 0
    assert list(outcome.phases)[:6] == ["up", "warmup", "faults", "heal", "recovery", "final"]
    assert cluster.torn_down == 1 and cluster.logs_copied == 1
    result = check_history(tmp_path / "history.jsonl", workload)
    assert result["valid"] is True, json.dumps(result, default=str)[:2000]
    assert exit_code_for(result["valid"]) == 0


def test_an_info_op_moves_the_worker_to_a_new_process(tmp_path):
    # pause makes ops on the paused node time out: those are info, and the
    # validator rejects any process that acts after its info.
    spec = short_spec(nemesis=("pause",), seed=3)
    _, _, outcome = run_fake(tmp_path, spec)
    history = read_history(tmp_path / "history.jsonl")
    infos = [o for o in history.client_operations() if o.status == "info"]
    assert infos, "the pause should have caused timeouts"
    assert outcome.processes > spec.concurrency


def test_the_set_workload_reports_the_adds_a_buggy_store_lost(tmp_path):
    spec = short_spec(workload="set", nemesis=("kill",))
    _, workload, outcome = run_fake(tmp_path, spec, cluster=FakeCluster(lose_writes=True))
    result = check_history(tmp_path / "history.jsonl", workload)
    s = result["checkers"]["set"]
    assert s["valid"] is False and s["lost"]
    assert all(e["value"] % 7 == 0 and e["f"] == "add" for e in s["lost"])
    assert exit_code_for(result["valid"]) == 1


def test_a_fault_that_did_nothing_is_an_infra_error_and_teardown_still_happens(tmp_path):
    cluster, _, outcome = run_fake(tmp_path, short_spec(nemesis=("kill",)), nemesis_broken=True)
    assert outcome.infra_error and "did nothing" in outcome.infra_error
    assert cluster.torn_down == 1 and cluster.logs_copied == 1
    read_history(tmp_path / "history.jsonl")  # the partial history is still valid


def test_sigterm_mid_run_tears_down_and_leaves_a_checkable_history(tmp_path):
    spec = short_spec(time_limit=30)
    timer = threading.Timer(0.8, lambda: os.kill(os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        cluster, workload, outcome = run_fake(tmp_path, spec, handle_signals=True)
    finally:
        timer.cancel()
    assert outcome.interrupted == "SIGTERM"
    assert cluster.torn_down == 1 and cluster.logs_copied == 1
    result = check_history(tmp_path / "history.jsonl", workload)
    assert result["valid"] in (True, "unknown")


def test_mixed_routing_pins_one_client_to_each_node_and_lets_the_rest_follow_the_leader(tmp_path):
    spec = short_spec(nemesis=(), concurrency=6, time_limit=0.6)
    run_fake(tmp_path, spec)
    ops = read_history(tmp_path / "history.jsonl").client_operations()
    nodes_of: dict = {}
    for o in ops:
        nodes_of.setdefault(o.process, set()).add(o.node)
    assert all(nodes_of[p] == {NODES[p]} for p in range(3))  # pinned, though refused by followers
    followers = [o for o in ops if o.process in (3, 4, 5)]
    assert sum(o.node == "n1" for o in followers) > 0.8 * len(followers)  # n1 leads in the fake
