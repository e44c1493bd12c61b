"""A synthetic run folder of any size, for the report's tests and its benchmark (no Docker, seconds).

A register workload over several keys, driven by a small model of a cluster:
each operation takes effect at one instant between its call and its return,
in the order of those instants, so the history is linearizable, unless
`stale_read` makes one read return the value its key had before a write that
completed before the read began. Partitions come and go on a schedule; while
one is on, more operations fail or time out (info), and the leader moves.
The observer samples every node every 50 ms; node logs are written with a
wall clock that the samples carry, as raftkv does. results.json comes from
the real checkers.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

WALL_ORIGIN = 1_795_000_000.0  # epoch seconds at run time 0
NS = 1_000_000_000


def write_synthetic_run(run_dir: str | Path, ops: int = 2000, *, processes: int = 10, keys: int = 8,
                        rate: float = 500.0, nodes: int = 3, seed: int = 1, stale_read: bool = True,
                        dual_leader: bool = False, check: bool = True) -> Path:
    """Write history.jsonl, spec.yaml, logs/ and (with `check`) results.json into run_dir."""
    rng = random.Random(seed)
    path = Path(run_dir)
    (path / "logs").mkdir(parents=True, exist_ok=True)
    names = [f"n{i}" for i in range(1, nodes + 1)]
    duration_ns = int(ops / rate * NS)
    start_ns = 2 * NS  # warm-up before the first op

    # Faults: a partition isolating the leader for 4 s out of every 10 s.
    faults = []
    t = start_ns + 3 * NS
    while t + 4 * NS < start_ns + duration_ns:
        faults.append((t, t + 4 * NS))
        t += 10 * NS

    def in_fault(t: int) -> bool:
        return any(a <= t < b for a, b in faults)

    # Leadership: n1 at term 1; each partition moves it to the next node, a new term,
    # about 300 ms after the partition starts.
    leadership = [(0, names[0], 1)]  # (from, node, term)
    for i, (a, _b) in enumerate(faults):
        leadership.append((a + 300_000_000, names[(i + 1) % nodes], i + 2))

    def leader_at(t: int) -> tuple[str, int]:
        cur = leadership[0]
        for entry in leadership:
            if entry[0] <= t:
                cur = entry
        return cur[1], cur[2]

    # Client operations: per process, back to back with think time; after an info the
    # worker carries on under a new process id.
    planned = []  # (effect, call, ret, process, f, key, value, status)
    next_pid = processes
    for slot in range(processes):
        pid = slot
        t = start_ns + rng.randrange(0, NS // 100)
        per_proc = ops // processes + (1 if slot < ops % processes else 0)
        for _ in range(per_proc):
            latency = int(rng.lognormvariate(15.4, 0.6))  # ~5 ms median
            f = rng.choice(("read", "read", "write", "cas"))
            key = f"k{rng.randrange(keys)}"
            value: Any = rng.randrange(10) if f == "write" else [rng.randrange(10), rng.randrange(10)] if f == "cas" else None
            faulty = in_fault(t)
            roll = rng.random()
            status = "info" if faulty and roll < 0.05 else "fail" if faulty and roll < 0.4 else "ok"
            if status == "info":
                latency = NS  # a timeout
            effect = t + rng.randrange(max(1, latency))
            planned.append([effect, t, t + latency, pid, f, key, value, status])
            t += latency + int(NS * processes / rate * rng.uniform(0.2, 1.0))
            if status == "info":
                pid, next_pid = next_pid, next_pid + 1

    # Apply in effect order: reads see the state, a cas that does not match fails.
    planned.sort(key=lambda p: p[0])
    state: dict[str, Any] = {}
    history_of: dict[str, list[tuple[int, Any]]] = {}  # key -> [(ret of the write, value before it)]
    outputs: dict[int, Any] = {}
    stale_at = int(len(planned) * 0.6) if stale_read else -1
    for n, p in enumerate(planned):
        effect, call, ret, pid, f, key, value, status = p
        if status == "fail":
            continue
        if f == "read":
            outputs[n] = state.get(key)
            if n >= stale_at >= 0 and status == "ok":
                # A stale read: the value before a write that had completed before this read began.
                earlier = [(r, before) for r, before in history_of.get(key, []) if r < call and before != state.get(key)]
                if earlier:
                    outputs[n] = earlier[-1][1]
                    stale_at = -1
        elif f == "write":
            history_of.setdefault(key, []).append((ret, state.get(key)))
            state[key] = value
        elif f == "cas":
            if state.get(key) == value[0]:
                history_of.setdefault(key, []).append((ret, state.get(key)))
                state[key] = value[1]
            elif status == "ok":
                p[7] = "fail"

    events: list[tuple[int, int, dict[str, Any]]] = []  # (time, order, event)

    def add(time: int, e: dict[str, Any]) -> None:
        events.append((time, len(events), e))

    for n, (_effect, call, ret, pid, f, key, value, status) in enumerate(planned):
        leader, _ = leader_at(call)
        node = names[pid % nodes] if pid < nodes else leader
        add(call, {"type": "invoke", "process": pid, "f": f, "key": key, "value": value, "node": node})
        out = outputs.get(n) if f == "read" and status == "ok" else value
        done: dict[str, Any] = {"type": status, "process": pid, "f": f, "key": key, "value": out, "node": node}
        if status == "info":
            done["error"] = "timeout"
        add(ret, done)
    end_ns = max(e[0] for e in events) + NS // 2

    for a, b in faults:
        leader, _ = leader_at(a - 1)
        others = [x for x in names if x != leader]
        drops = {leader: others, **{o: [leader] for o in others}}
        add(a, {"type": "invoke", "process": "nemesis", "f": "start-partition", "value": {"grudge": "isolate-leader"}})
        add(a + 200_000_000, {"type": "info", "process": "nemesis", "f": "start-partition",
                              "value": {"grudge": "isolate-leader", "drops": drops}})
        add(b, {"type": "invoke", "process": "nemesis", "f": "stop-partition", "value": None})
        add(b + 100_000_000, {"type": "info", "process": "nemesis", "f": "stop-partition", "value": None})
    add(end_ns - NS // 4, {"type": "invoke", "process": "nemesis", "f": "heal", "value": None})
    add(end_ns - NS // 5, {"type": "info", "process": "nemesis", "f": "heal", "value": []})

    # Observer: every node every 50 ms. A deposed leader keeps believing it leads
    # for 200 ms (legal in Raft: a later term); with `dual_leader`, for a whole
    # second in the same term as its successor, which the split-brain checker must flag.
    logs: dict[str, list[str]] = {n: [] for n in names}
    last_role: dict[str, tuple[str, int]] = {}
    t = NS
    while t < end_ns:
        leader, term = leader_at(t)
        for node in names:
            role, nterm = ("leader", term) if node == leader else ("follower", term)
            prev = [entry for entry in leadership if entry[0] <= t]
            if node != leader and len(prev) > 1 and prev[-2][1] == node:
                grace = NS if dual_leader else 200_000_000
                if t - prev[-1][0] < grace:
                    role, nterm = "leader", term if dual_leader else prev[-2][2]
            value = {"role": role, "term": nterm, "leader": leader if role != "leader" else node,
                     "commit_index": t // 10_000_000, "id": node, "wall_time": WALL_ORIGIN + t / NS}
            add(t + 1000, {"type": "ok", "process": "observer", "f": "status", "value": value, "node": node})
            if last_role.get(node) != (role, nterm):
                stamp = datetime.fromtimestamp(WALL_ORIGIN + t / NS, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
                old = last_role.get(node, ("follower", 0))
                logs[node].append(f"{stamp} {node} INFO role {old[0]} -> {role} (term {nterm})")
                last_role[node] = (role, nterm)
        t += 50_000_000

    events.sort(key=lambda e: (e[0], e[1]))
    with open(path / "history.jsonl", "w") as f:
        for i, (time, _, e) in enumerate(events):
            f.write(json.dumps({"index": i, **e, "time": time}, separators=(", ", ": ")) + "\n")
    for node, lines in logs.items():
        (path / "logs" / f"{node}.log").write_text("\n".join(lines) + "\n")
    (path / "spec.yaml").write_text(
        f"target: synthetic\nnodes: {nodes}\nworkload: register\nnemesis:\n- partition\nseed: {seed}\n")
    if check:
        write_results(path, seed)
    return path


def write_results(path: Path, seed: int) -> dict[str, Any]:
    """results.json from the real checkers, as `splitbrain run` writes it (the parts the report reads);
    the test is named after the folder the run is in, store/<test>/<run>."""
    from checkers.composite import check_history
    from checkers.verdict import exit_code_for
    from nemesis.registry import facts_reader
    from workloads.base import make_workload

    workload = make_workload("register", seed)
    checked = check_history(path / "history.jsonl", workload, key_time_limit=20.0, fault_facts=facts_reader())
    code = int(exit_code_for(checked["valid"]))
    results = {
        "test": path.resolve().parent.name, "seed": seed, "valid": checked["valid"], "exit_code": code,
        "status": "complete", "model": workload.model, "workload": workload.name, "checkers": checked["checkers"],
        "stats": checked.get("stats", {}), "command": f"splitbrain run --spec {path / 'spec.yaml'}",
    }
    (path / "results.json").write_text(json.dumps(results, indent=1, default=str))
    return results
