"""Process faults, the kill and pause families: crash (SIGKILL, later restart with the disk intact) and pause.

Verified both ways: a killed node's container has exited (its process is
gone) and it does not answer; a restarted node runs and answers its status
probe again; a paused node's container is frozen and does not answer; a
resumed one answers again.
"""

from __future__ import annotations

import random
import time
from typing import Any

from nemesis.errors import NemesisError
from nemesis.family import LEADER, SYMBOLIC, Draw, FaultContext, NodeFamily

RESTART_WAIT_S = 15.0


class Processes:
    def __init__(self, cluster):
        self.cluster = cluster
        self.killed: set[str] = set()
        self.paused: set[str] = set()

    def kill(self, nodes: list[str]) -> dict[str, Any]:
        evidence = {}
        for node in nodes:
            if self.cluster.state(node) == "paused":
                self.cluster.resume(node)  # SIGKILL is not delivered to a frozen process until it thaws
                self.paused.discard(node)
            self.cluster.kill(node)
            self.killed.add(node)
            state = self.cluster.state(node)
            if state == "running":
                raise NemesisError(f"kill {node}: its container is still running after SIGKILL")
            answers = self.cluster.probe(node, timeout=0.3) is not None
            if answers:
                raise NemesisError(f"kill {node}: the node still answers its status probe")
            evidence[node] = {"state": state, "exit_code": self._exit_code(node), "answers": False}
        return {"verified": True, "nodes": evidence}

    def _exit_code(self, node: str) -> int | None:
        return self.cluster.exit_codes().get(node)

    def start(self, nodes: list[str]) -> dict[str, Any]:
        for node in nodes:
            self.cluster.start(node)
            self.killed.discard(node)
        evidence = {}
        exited: dict[str, int] = {}
        for node in nodes:
            state = self.cluster.state(node)
            if state in ("exited", "dead") and self._exit_code(node) is not None:
                # It started and exited at once: the target refused what it found (a corrupt or lost
                # file on its disk), the target's outcome to record, not a restart that failed.
                exited[node] = self._exit_code(node)
            elif state != "running":
                raise NemesisError(f"start {node}: container is {state} after docker start")
        t0 = time.monotonic()
        silent = self.cluster.wait_serving([n for n in nodes if n not in exited], RESTART_WAIT_S) + list(exited)
        for node in nodes:
            # A node that runs but never answers is the target's problem, not the harness's: record it.
            evidence[node] = {"state": self.cluster.state(node), "answers": node not in silent,
                              "answered_after_s": None if node in silent else round(time.monotonic() - t0, 2),
                              **({"exit_code": exited[node]} if node in exited else {})}
        return {"verified": not silent, "nodes": evidence}

    def pause(self, nodes: list[str]) -> dict[str, Any]:
        evidence = {}
        for node in nodes:
            self.cluster.pause(node)
            self.paused.add(node)
        for node in nodes:
            state = self.cluster.state(node)
            if state != "paused":
                raise NemesisError(f"pause {node}: container is {state}, not paused")
            if self.cluster.probe(node, timeout=0.3) is not None:
                raise NemesisError(f"pause {node}: the node still answers its status probe")
            evidence[node] = {"state": state, "answers": False}
        return {"verified": True, "nodes": evidence}

    def resume(self, nodes: list[str]) -> dict[str, Any]:
        for node in nodes:
            self.cluster.resume(node)
            self.paused.discard(node)
        silent = self.cluster.wait_serving(nodes, 5.0)
        evidence = {n: {"state": self.cluster.state(n), "answers": n not in silent} for n in nodes}
        for n in nodes:
            if evidence[n]["state"] != "running":
                raise NemesisError(f"resume {n}: container is {evidence[n]['state']} after unpause")
        return {"verified": not silent, "nodes": evidence}


class Downed:
    """What an injector shares whose start crashes nodes its own way (lose-unsynced, corrupt): the running
    nodes a start may hit, its stop (restart the nodes named, or all it left down), and the heal's restart."""

    shown = "down"

    def __init__(self, ctx: FaultContext):
        self.ctx = ctx
        self.procs: Processes = ctx.shared(Processes)
        self.down: set[str] = set()

    def victims(self, op: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
        states = self.ctx.cluster.states()
        pool = [n for n in self.ctx.cluster.node_ids if states[n] == "running"]
        nodes, notes = self.ctx.resolve(op["nodes"], pool)
        return [n for n in nodes if n in pool], notes

    def restart(self, op: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
        c = self.ctx.cluster
        nodes = [n for n in op["nodes"] if n in c.node_ids] or sorted(self.down)
        nodes = [n for n in nodes if c.state(n) not in ("running", "paused")]
        self.down -= set(nodes)
        if not nodes:
            return [], {"note": "no node was down"}
        started = self.ctx.restart(nodes)
        # A node that exits at once refused what it found on its disk: the test's outcome, said.
        codes = c.exit_codes()
        exited = {n: codes[n] for n in nodes if codes.get(n) is not None}
        return nodes, {**started, **({"exited_at_start": exited} if exited else {})}

    def restart_left(self) -> dict[str, Any] | None:
        """Start what this family left down (the heal); None if nothing was."""
        states = self.ctx.cluster.states()
        down = sorted(n for n in self.down if states.get(n) not in ("running", "paused", "missing"))
        self.down.clear()
        return self.ctx.restart(down) if down else None

    def current(self) -> list[str]:
        return [f"{self.shown}:{n}" for n in sorted(self.down)]

    def reapply(self, node: str) -> dict[str, Any] | None:
        return None

    def after_restart(self, nodes: list[str], evidence: dict[str, Any]) -> dict[str, Any]:
        return {}


def victims(rng: random.Random, nodes: list[str], busy: set[str]) -> tuple[str, ...]:
    """Nodes for a kill or pause: the leader, or a random minority not already hit."""
    free = [n for n in nodes if n not in busy]
    most = max(1, (len(nodes) - 1) // 2)
    if not free:
        return ()
    if rng.random() < 0.4 and not busy:
        return (LEADER,)
    k = rng.randint(1, min(most, len(free)))
    return tuple(sorted(rng.sample(free, k)))


class _Nodes:
    """kill/start or pause/resume, against the one `Processes` of the nemesis."""

    def __init__(self, ctx: FaultContext, family: ProcessFamily):
        self.ctx = ctx
        self.fam = family
        self.procs: Processes = ctx.shared(Processes)

    def _hit(self) -> set[str]:
        return self.procs.killed if self.fam.name == "kill" else self.procs.paused

    def invoke(self, op: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        ids, procs = self.ctx.cluster.node_ids, self.procs
        if op["f"] == self.fam.start_op:
            pool = [n for n in ids if n not in procs.killed and (self.fam.name == "kill" or n not in procs.paused)]
            nodes, notes = self.ctx.resolve(op["nodes"], pool)
            nodes = [n for n in nodes if n in pool]
            if not nodes:
                return [], {"note": f"every chosen node was already {self.fam.already}", **notes}
            done = procs.kill(nodes) if self.fam.name == "kill" else procs.pause(nodes)
            return nodes, {**done, **notes}
        nodes = [n for n in op["nodes"] if n not in SYMBOLIC] if op["nodes"] else []
        if not nodes or set(op["nodes"]) & set(SYMBOLIC):
            nodes = sorted(set(nodes) | self._hit())
        if self.fam.name == "kill":
            nodes = [n for n in nodes if self.ctx.cluster.state(n) not in ("running", "paused")]
            return (nodes, self.ctx.restart(nodes)) if nodes else ([], {"note": "no node was down"})
        nodes = [n for n in nodes if self.ctx.cluster.state(n) == "paused"]
        return (nodes, procs.resume(nodes)) if nodes else ([], {"note": "no node was paused"})

    def current(self) -> list[str]:
        return [f"{self.fam.shown}:{n}" for n in sorted(self._hit())]

    def reapply(self, node: str) -> dict[str, Any] | None:
        return None

    def after_restart(self, nodes: list[str], evidence: dict[str, Any]) -> dict[str, Any]:
        return {}

    def heal(self) -> dict[str, Any]:
        """Every node back up, whoever left it down or frozen (also a node that crashed by itself)."""
        states = self.ctx.cluster.states()
        ids = self.ctx.cluster.node_ids
        if self.fam.name == "pause":
            paused = [n for n in ids if states[n] == "paused"]
            return {"resume": self.procs.resume(paused)} if paused else {}
        # "missing": never created (up failed half-way) or already torn down.
        down = [n for n in ids if states[n] not in ("running", "paused", "missing")]
        return {"start": self.procs.start(down)} if down else {}


class ProcessFamily(NodeFamily):
    def __init__(self, name: str, start_op: str, stop_op: str, heal_rank: int, shown: str, already: str):
        self.name, self.start_op, self.stop_op, self.heal_rank = name, start_op, stop_op, heal_rank
        self.ops = (start_op, stop_op)
        self.starts = (start_op,)
        self.leader_ops = frozenset({start_op})
        self.shown, self.already = shown, already
        self.bounce_chance = 0.35 if name == "kill" else 0.0  # of a kill: restart almost at once

    def injector(self, ctx):
        return _Nodes(ctx, self)

    def draw(self, rng, nodes, busy, target=None):
        hit = victims(rng, nodes, busy)
        return Draw(self.start_op, {"nodes": list(hit)}, hit) if hit else None

    def strategy(self, nodes):
        from hypothesis import strategies as st

        most = max(1, (len(nodes) - 1) // 2)
        # The leader first: it shrinks towards the most telling victim.
        return st.fixed_dictionaries({"nodes": st.one_of(
            st.just([LEADER]),
            st.lists(st.sampled_from(sorted(nodes)), min_size=1, max_size=most, unique=True).map(sorted))})


# Heal order: thaw first (a frozen node cannot be restarted), then restart.
KILL = ProcessFamily("kill", "kill", "start", heal_rank=20, shown="killed", already="down")
PAUSE = ProcessFamily("pause", "pause", "resume", heal_rank=10, shown="paused", already="paused or down")
