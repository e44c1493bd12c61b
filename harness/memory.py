"""An in-memory cluster: three nodes, a client and a nemesis in this process, for the harness's own tests
and benchmarks.

It is not a target and tests no store: it is the fake for tests whose point is the harness itself (the
run loop, schedules, checkers and reports wired together) and for benchmarks of the harness's own cost.
Its store is a plain dict behind a leader that is n1 unless n1 is down, so every history it gives is
linearizable, unless `lose_writes` drops every seventh add of the set workload on purpose.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from harness.run import RunLoop
from harness.spec import TestSpec
from nemesis.schedule import make_schedule
from workloads.base import make_workload

NODES = ["n1", "n2", "n3"]


class MemoryCluster:
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


class MemoryClient:
    def __init__(self, cluster: MemoryCluster):
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


class MemoryNemesis:
    def __init__(self, cluster: MemoryCluster, broken: bool = False):
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


def quick_spec(**kw) -> TestSpec:
    """A run of about a second and a half: kills, pauses and partitions every 0.2 s."""
    base = dict(target="fake", nodes=3, workload="register", nemesis=("kill", "pause", "partition"),
                time_limit=1.2, concurrency=5, rate=400, seed=7, nemesis_interval=0.2, warmup=0.2,
                recovery_limit=3, op_timeout=0.2, ops_per_key=30)
    base.update(kw)
    return TestSpec(**base).resolve()


def run_in_memory(tmp_path: Path, spec: TestSpec, cluster: MemoryCluster | None = None, nemesis_broken: bool = False,
                  **kw):
    """One run of spec against the in-memory cluster, its history and logs in tmp_path: (cluster, workload, outcome)."""
    cluster = cluster or MemoryCluster()
    workload = make_workload(spec.workload, spec.seed, keys=spec.active_keys(), ops_per_key=spec.ops_per_key)
    schedule = make_schedule(spec.seed, spec.nemesis, NODES, spec.nemesis_interval, spec.time_limit)
    logs = tmp_path / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    loop = RunLoop(spec, cluster, lambda nodes: MemoryClient(cluster),
                   lambda nodes: MemoryNemesis(cluster, nemesis_broken), workload, schedule,
                   tmp_path / "history.jsonl", logs_dir=logs, **kw)
    outcome = loop.run()
    return cluster, workload, outcome


def memory_parts(cluster: MemoryCluster):
    """`harness.commands.run.execute`'s parts (cluster, nodes, client and nemesis factories) for this cluster,
    so a whole `splitbrain run` (folder, results, report, summary) runs with no Docker."""

    def parts(spec, target, log):
        return cluster, list(NODES), (lambda ips: MemoryClient(cluster)), (lambda ips: MemoryNemesis(cluster))

    return parts
