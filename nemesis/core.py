"""The nemesis: one entry point, `invoke(op) -> completion`, over the fault families, each verified.

Operations (what `nemesis.schedule` emits; a few shorthands are accepted too):

    {"f": "start-partition", "value": {"grudge": NAME, "seed"?: int}}   NAME in grudges.GRUDGES
    {"f": "stop-partition"}
    {"f": "kill" | "pause",  "value": {"nodes": [...]} | NODE | "leader" | "random"}
    {"f": "start" | "resume", "value": {"nodes": [...]} | NODE | None}   None / "leader" = every killed/paused node
    {"f": "bump-clock",   "value": {"nodes": [...], "delta_ms": D, "rate"?: R} | {NODE: offset_s, ...}}
    {"f": "strobe-clock", "value": {"nodes": [...], "delta_ms": D, "period_ms": P}}
    {"f": "clock-rate",   "value": {"nodes": [...], "rate": R}}   (= bump-clock with delta_ms 0)
    {"f": "reset-clock",  "value": None | {"nodes": [...]}}
    {"f": "start-loss",   "value": {"nodes"?: [...], "probability": P} | P}
    {"f": "stop-loss"}
    {"f": "start-delay" | "start-duplicate" | "start-reorder", "value": {"nodes"?: [...], ...}}  netem only
    {"f": "stop-delay" | "stop-duplicate" | "stop-reorder"}
    {"f": "start-vote-crash"}   voters crash as they vote, one must vote again (nemesis/vote_crash.py)
    {"f": "stop-vote-crash"}    restart what it left down

The completion is {"type": "info", "f", "value": what was actually done (nodes
and grudge resolved), "evidence": what the verification saw}. A fault that did
not take effect raises NemesisError: the run stops as an infrastructure error
rather than reporting a test that never happened.
"""

from __future__ import annotations

import math
import random
import threading
from typing import Any

from nemesis import grudges as G
from nemesis.clock import Clocks
from nemesis.errors import NemesisError, NemesisOpError
from nemesis.loss import NETEM_FAULTS, Loss, iptables_problem, netem_problem
from nemesis.netem import Netem, parse_value
from nemesis.partition import Partitioner
from nemesis.process import Processes
from nemesis.vote_crash import FAILPOINT, VoteCrash

NETEM_OPS = tuple(f"{verb}-{kind}" for kind in NETEM_FAULTS for verb in ("start", "stop"))
OPS = (
    "start-partition", "stop-partition", "kill", "start", "pause", "resume",
    "bump-clock", "strobe-clock", "reset-clock", "start-loss", "stop-loss",
    "start-vote-crash", "stop-vote-crash",
) + NETEM_OPS
FAMILY_OF = {
    "start-partition": "partition", "stop-partition": "partition",
    "kill": "kill", "start": "kill", "pause": "pause", "resume": "pause",
    "bump-clock": "clock", "strobe-clock": "clock", "reset-clock": "clock",
    "start-loss": "loss", "stop-loss": "loss",
    "start-vote-crash": "vote-crash", "stop-vote-crash": "vote-crash",
    **{op: op.split("-", 1)[1] for op in NETEM_OPS},
}
SYMBOLIC = ("leader", "random")


def _node_list(value: Any, node_ids: list[str], f: str, allow_empty: bool) -> list[str]:
    if value is None:
        nodes: list = []
    elif isinstance(value, str):
        nodes = [value]
    elif isinstance(value, dict):
        inner = value.get("nodes") or []
        if isinstance(inner, str):
            inner = [inner]
        if not isinstance(inner, (list, tuple)):
            raise NemesisOpError(f"{f}: 'nodes' must be a list of node ids, got {inner!r}")
        nodes = list(inner)
    elif isinstance(value, (list, tuple)):
        nodes = list(value)
    else:
        raise NemesisOpError(f"{f}: cannot read nodes from {value!r}")
    for n in nodes:
        if not isinstance(n, str) or (n not in node_ids and n not in SYMBOLIC):
            raise NemesisOpError(f"{f}: unknown node {n!r} (nodes: {', '.join(node_ids)})")
    if not nodes and not allow_empty:
        raise NemesisOpError(f"{f}: needs at least one node")
    return nodes


def validate_op(op: dict[str, Any], node_ids: list[str]) -> dict[str, Any]:
    """The op in one normal form {"f", ...fields}; NemesisOpError when it is malformed. Pure."""
    if not isinstance(op, dict) or "f" not in op:
        raise NemesisOpError(f"a nemesis op needs an 'f': {op!r}")
    f, value = op["f"], op.get("value")
    if f == "clock-rate":  # shorthand: a rate change is a bump of zero with a rate
        value = {**(value if isinstance(value, dict) else {}), "delta_ms": 0}
        return validate_op({"f": "bump-clock", "value": value}, node_ids)
    if f not in OPS:
        raise NemesisOpError(f"unknown nemesis op {f!r}; known: {', '.join(OPS)}")
    if f == "start-partition":
        grudge = value.get("grudge") if isinstance(value, dict) else value
        if grudge not in G.GRUDGES:
            raise NemesisOpError(f"start-partition: unknown grudge {grudge!r}; known: {', '.join(G.GRUDGES)}")
        seed = value.get("seed") if isinstance(value, dict) else None
        return {"f": f, "grudge": grudge, "seed": seed}
    if f in ("stop-partition", "stop-loss", "start-vote-crash", "stop-vote-crash") or (f in NETEM_OPS and f.startswith("stop-")):
        return {"f": f}
    if f in NETEM_OPS:
        kind = f.split("-", 1)[1]
        nodes = _node_list(value, node_ids, f, allow_empty=True) or list(node_ids)
        return {"f": f, "kind": kind, "nodes": nodes, "values": parse_value(kind, value)}
    if f in ("kill", "pause"):
        return {"f": f, "nodes": _node_list(value, node_ids, f, allow_empty=False)}
    if f in ("start", "resume"):
        return {"f": f, "nodes": _node_list(value, node_ids, f, allow_empty=True)}
    if f == "reset-clock":
        return {"f": f, "nodes": _node_list(value, node_ids, f, allow_empty=True) or None}
    if f == "bump-clock":
        if isinstance(value, dict) and "nodes" in value:
            nodes = _node_list(value, node_ids, f, allow_empty=False)
            delta = _number(value.get("delta_ms", 0), f, "delta_ms") / 1000.0
            rate = _number(value.get("rate", 1.0), f, "rate")
            if rate <= 0:
                raise NemesisOpError(f"bump-clock: rate must be positive, got {rate}")
            return {"f": f, "nodes": nodes, "delta_s": delta, "rate": rate, "absolute": None}
        if isinstance(value, dict) and value:
            absolute = {}
            for n, off in value.items():
                if n not in node_ids:
                    raise NemesisOpError(f"bump-clock: unknown node {n!r}")
                absolute[n] = _number(off, f, f"offset of {n}")
            return {"f": f, "nodes": sorted(absolute), "delta_s": None, "rate": 1.0, "absolute": absolute}
        raise NemesisOpError(f"bump-clock: needs {{'nodes', 'delta_ms'}} or {{node: offset_s}}, got {value!r}")
    if f == "strobe-clock":
        value = value or {}
        if not isinstance(value, dict):
            raise NemesisOpError(f"strobe-clock: needs {{'nodes', 'delta_ms', 'period_ms'}}, got {value!r}")
        nodes = _node_list(value, node_ids, f, allow_empty=True) or list(node_ids)
        delta = _number(value.get("delta_ms", 1000), f, "delta_ms") / 1000.0
        period = _number(value.get("period_ms", 100), f, "period_ms") / 1000.0
        if period <= 0:
            raise NemesisOpError(f"strobe-clock: period_ms must be positive, got {period * 1000:g}")
        return {"f": f, "nodes": nodes, "delta_s": delta, "period_s": period}
    # start-loss
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        nodes, p = list(node_ids), float(value)
    elif isinstance(value, dict):
        nodes = _node_list(value, node_ids, f, allow_empty=True) or list(node_ids)
        p = _number(value.get("probability"), f, "probability")
    else:
        raise NemesisOpError(f"start-loss: needs a probability, got {value!r}")
    if not 0 < p <= 1:
        raise NemesisOpError(f"start-loss: probability must be in (0, 1], got {p}")
    return {"f": f, "nodes": nodes, "probability": p}


def target_failpoints(target) -> dict[str, str]:
    """The failpoints a target offers (name -> what it does); none unless it has `failpoints()`."""
    fn = getattr(target, "failpoints", None)
    return dict(fn()) if callable(fn) else {}


class DockerControl:
    """What vote-crash needs (nemesis.vote_crash.NodeControl), done to a DockerCluster's containers."""

    def __init__(self, cluster, processes: Processes, target, start):
        self.cluster = cluster
        self.processes = processes
        self.target = target
        self._start = start  # Nemesis._start: a restarted node gets its partition, loss and delay back

    @property
    def node_ids(self) -> list[str]:
        return self.cluster.node_ids

    def statuses(self, nodes: list[str]) -> dict[str, dict | None]:
        return self.cluster.probe_some(nodes, timeout=0.2)

    def exit_codes(self, nodes: list[str]) -> dict[str, int | None]:
        codes = self.cluster.exit_codes()
        return {n: codes.get(n) for n in nodes}

    def arm(self, node: str, on: bool) -> bool:
        from harness.cluster import run_sync

        return run_sync(self.target.set_failpoint(self.cluster.addresses[node], FAILPOINT, on))

    def kill(self, nodes: list[str]) -> dict:
        return self.processes.kill(nodes) if nodes else {}

    def start(self, nodes: list[str]) -> dict:
        return self._start(nodes) if nodes else {}


def _number(x: Any, f: str, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise NemesisOpError(f"{f}: {what} must be a finite number, got {x!r}")
    return float(x)


class Nemesis:
    """Faults against one DockerCluster; see the module docstring for the operations."""

    def __init__(self, cluster, target, faults: list[str] | tuple[str, ...], rng: random.Random | None = None):
        self.cluster = cluster
        self.target = target
        self.faults = list(faults)
        self.rng = rng or random.Random(0)
        self.loss = Loss(cluster)
        self.partition = Partitioner(cluster, target.peer_port, lossy=lambda: self.loss.nodes)
        self.processes = Processes(cluster)
        self.clocks = Clocks(cluster, target.clock_control())
        self.netem = Netem(cluster)
        self.vote_crash = VoteCrash(DockerControl(cluster, self.processes, target, start=self._start))
        self._lock = threading.RLock()

    # ---- before the run ---------------------------------------------------

    def problems(self) -> list[str]:
        """One line per requested fault family that this host or target cannot inject."""
        out = list(self.target.unsupported_faults(self.faults))
        for f in self.faults:
            if f in NETEM_FAULTS:
                why = netem_problem()
                if why:
                    out.append(f"{f} needs the netem qdisc: {why}")
            elif f in ("partition", "loss") and iptables_problem():
                out.append(f"{f}: {iptables_problem()}")
            elif f == "partition" and len(self.cluster.node_ids) < 2:
                out.append("partition needs at least 2 nodes")
            elif f == "vote-crash" and FAILPOINT not in target_failpoints(self.target):
                out.append(f"vote-crash: target {self.target.name} has no {FAILPOINT} failpoint "
                           "(it must crash itself right after granting a vote; see nemesis/vote_crash.py)")
            elif f == "vote-crash" and len(self.cluster.node_ids) < 3:
                out.append("vote-crash needs at least 3 nodes (a leader, a winner and a voter)")
            elif f not in ("partition", "kill", "pause", "clock", "loss", "vote-crash") and f not in NETEM_FAULTS:
                out.append(f"{f}: no such fault family")
        return out

    # ---- during the run ---------------------------------------------------

    @property
    def current_faults(self) -> list[str]:
        out = []
        if self.partition.active:
            out.append(f"partition:{self.partition.grudge_name}")
        out += [f"killed:{n}" for n in sorted(self.processes.killed)]
        out += [f"paused:{n}" for n in sorted(self.processes.paused)]
        for n, s in sorted(self.clocks.settings.items()):
            rate = f"x{s['rate']:g}" if s["rate"] != 1.0 else ""
            out.append(f"clock:{n}{s['offset_s']:+g}s{rate}")
        out += [f"strobe:{n}" for n in sorted(self.clocks.strobing)]
        if self.loss.active:
            out.append(f"loss:{self.loss.probability:g}")
        out += self.netem.active_kinds()
        if self.vote_crash.armed:
            out.append("vote-crash:armed")
        out += [f"vote-crash:down:{n}" for n in self.vote_crash.left_down]
        return out

    def _alive(self) -> list[str]:
        """Nodes whose network namespace exists (running or paused)."""
        states = self.cluster.states()
        return [n for n in self.cluster.node_ids if states[n] in ("running", "paused")]

    def leader(self) -> str | None:
        """The node that claims leadership in the highest term, per the status probes."""
        statuses = self.cluster.probe_all(timeout=0.5)
        leaders = [(s.get("term") or 0, n) for n, s in statuses.items() if s and s.get("role") == "leader"]
        return max(leaders)[1] if leaders else None

    def _resolve(self, nodes: list[str], pool: list[str]) -> tuple[list[str], dict]:
        """Replace "leader"/"random" by node ids (from pool); notes for the evidence."""
        out, notes = [], {}
        for n in nodes:
            if n == "leader":
                lead = self.leader()
                if lead is None or lead not in pool:
                    lead = self.rng.choice(pool) if pool else None
                    notes["leader"] = f"no leader found; chose {lead}"
                else:
                    notes["leader"] = lead
                n = lead
            elif n == "random":
                n = self.rng.choice(pool) if pool else None
            if n is not None and n not in out:
                out.append(n)
        return out, notes

    def invoke(self, op: dict[str, Any]) -> dict[str, Any]:
        """Perform one fault operation, verify it, and return its completion (see module docstring)."""
        norm = validate_op(op, self.cluster.node_ids)
        f = norm["f"]
        with self._lock:
            try:
                value, evidence = self._do(norm)
            except NemesisError:
                raise
            except Exception as e:
                raise NemesisError(f"{f}: {type(e).__name__}: {e}") from e
        return {"type": "info", "f": f, "value": value, "evidence": evidence}

    def _do(self, op: dict[str, Any]) -> tuple[Any, dict]:
        f = op["f"]
        ids = self.cluster.node_ids
        if f == "start-partition":
            rng = random.Random(op["seed"]) if op["seed"] is not None else self.rng
            leader = self.leader() if op["grudge"] == "isolate-leader" else None
            name = op["grudge"]
            if name == "isolate-leader" and leader is None:
                name = "isolate-one"  # no leader to isolate: isolate someone, and say so
            grudge = G.compute(name, ids, rng, leader=leader)
            ev = self.partition.start(name, grudge, self._alive())
            if name != op["grudge"]:
                ev["note"] = "no node claimed leadership; isolated a random node instead"
            return {"grudge": name, "drops": G.describe(grudge), "leader": leader}, ev
        if f == "stop-partition":
            if not self.partition.active:
                return None, {"note": "no partition was active"}
            return None, self.partition.stop(self._alive())
        if f == "kill":
            pool = [n for n in ids if n not in self.processes.killed]
            nodes, notes = self._resolve(op["nodes"], pool)
            nodes = [n for n in nodes if n not in self.processes.killed]
            if not nodes:
                return [], {"note": "every chosen node was already down", **notes}
            return nodes, {**self.processes.kill(nodes), **notes}
        if f == "start":
            nodes = [n for n in op["nodes"] if n not in SYMBOLIC] if op["nodes"] else []
            if not nodes or set(op["nodes"]) & set(SYMBOLIC):
                nodes = sorted(set(nodes) | self.processes.killed)
            nodes = [n for n in nodes if self.cluster.state(n) not in ("running", "paused")]
            if not nodes:
                return [], {"note": "no node was down"}
            return nodes, self._start(nodes)
        if f == "pause":
            pool = [n for n in ids if n not in self.processes.paused and n not in self.processes.killed]
            nodes, notes = self._resolve(op["nodes"], pool)
            nodes = [n for n in nodes if n in pool]
            if not nodes:
                return [], {"note": "every chosen node was already paused or down", **notes}
            return nodes, {**self.processes.pause(nodes), **notes}
        if f == "resume":
            nodes = [n for n in op["nodes"] if n not in SYMBOLIC] if op["nodes"] else []
            if not nodes or set(op["nodes"]) & set(SYMBOLIC):
                nodes = sorted(set(nodes) | self.processes.paused)
            nodes = [n for n in nodes if self.cluster.state(n) == "paused"]
            if not nodes:
                return [], {"note": "no node was paused"}
            return nodes, self.processes.resume(nodes)
        if f == "bump-clock":
            self._need_clock()
            if op["absolute"] is not None:
                changes = {n: {"offset_s": off, "rate": 1.0} for n, off in op["absolute"].items()}
            else:
                nodes, _ = self._resolve(op["nodes"], list(ids))
                changes = {}
                for n in nodes:
                    cur = self.clocks.settings.get(n, {"offset_s": 0.0, "rate": 1.0})
                    changes[n] = {"offset_s": cur["offset_s"] + op["delta_s"], "rate": op["rate"]}
            return changes, self.clocks.bump(changes)
        if f == "strobe-clock":
            self._need_clock()
            nodes, _ = self._resolve(op["nodes"], list(ids))
            return ({"nodes": nodes, "delta_s": op["delta_s"], "period_s": op["period_s"]},
                    self.clocks.strobe(nodes, op["delta_s"], op["period_s"]))
        if f == "reset-clock":
            self._need_clock()
            ev = self.clocks.reset(op["nodes"])
            return [e["node"] for e in ev["nodes"]], ev
        if f == "start-loss":
            nodes, _ = self._resolve(op["nodes"], list(ids))
            return ({"nodes": nodes, "probability": op["probability"]},
                    self.loss.start(nodes, op["probability"], self._alive()))
        if f == "stop-loss":
            if not self.loss.active:
                return None, {"note": "no loss was active"}
            return None, self.loss.stop(self._alive())
        if f == "start-vote-crash":
            if self.vote_crash.left_down:
                return None, {"note": "the last vote-crash is not over: its nodes are still down"}
            return self.vote_crash.start()
        if f == "stop-vote-crash":
            return self.vote_crash.stop()
        if f in NETEM_OPS:
            why = netem_problem()
            if why:
                raise NemesisError(f"{f}: {why}")
            if f.startswith("stop-"):
                return None, self.netem.stop(f.split("-", 1)[1], self._alive())
            nodes, _ = self._resolve(op["nodes"], list(ids))
            return ({"nodes": nodes, **op["values"]},
                    self.netem.start(op["kind"], nodes, op["values"], self._alive()))
        raise NemesisOpError(f"unhandled op {f}")

    def _start(self, nodes: list[str]) -> dict[str, Any]:
        """Restart nodes and give them back the faults their network namespace lost; verified."""
        ev = self.processes.start(nodes)
        ev["reapplied"] = [r for n in nodes
                           for r in (self.partition.reapply(n), self.loss.reapply(n), self.netem.reapply(n)) if r]
        if self.partition.active:
            ev["partition"] = self.partition.verify(self._alive(), expect_grudge=True)
        # A skew written while the node was down is checked now that it runs.
        ev["clocks"] = [self.clocks.verify_offset(n, self.clocks.settings[n]["offset_s"])
                        for n in nodes if n in self.clocks.settings and n in ev["nodes"] and ev["nodes"][n]["answers"]]
        return ev

    def _need_clock(self) -> None:
        if self.target.clock_control() is None:
            raise NemesisError(f"target {self.target.name} has no clock control")

    # ---- the end ----------------------------------------------------------

    def heal_all(self) -> dict[str, Any]:
        """Undo every fault: thaw, restart, remove the harness's rules, reset clocks; each step verified."""
        with self._lock:
            done: dict[str, Any] = {}
            states = self.cluster.states()
            paused = [n for n in self.cluster.node_ids if states[n] == "paused"]
            if paused:
                done["resume"] = self.processes.resume(paused)
            # "missing": never created (up failed half-way) or already torn down.
            down = [n for n in self.cluster.node_ids if states[n] not in ("running", "paused", "missing")]
            if down:
                done["start"] = self.processes.start(down)
            if self.vote_crash.active:
                done["stop-vote-crash"] = self.vote_crash.stop()[1]
            alive = self._alive()
            # Loss first: the partition heal then verifies on a loss-free network.
            if self.loss.active:
                done["stop-loss"] = self.loss.stop(alive)
            if self.partition.active:
                done["stop-partition"] = self.partition.stop(alive)
            if self.clocks.skewed:
                done["reset-clock"] = self.clocks.reset()
            if self.netem.settings:
                done["stop-netem"] = self.netem.stop(None, alive)
            done["final-check"] = self._final_check()
            return {"type": "info", "f": "heal", "value": sorted(k for k in done if k != "final-check"),
                    "evidence": done}

    def _final_check(self) -> dict[str, Any]:
        """After a heal: every node runs and answers, and no rule of ours is left anywhere (removed if found)."""
        from nemesis.partition import parallel, remove_chain_script

        states = self.cluster.states()
        not_running = {n: st for n, st in states.items() if st != "running"}
        if not_running:
            raise NemesisError(f"heal: nodes not running afterwards: {not_running}")
        script = (f"{remove_chain_script('SPLITBRAIN')}; {remove_chain_script('SPLITBRAIN-LOSS')}; "
                  "tc qdisc show dev eth0 | grep -c netem || true")

        def leftovers(node: str) -> list[int]:
            rc, out = self.cluster.exec_netns(node, ["sh", "-c", script])
            return [int(x) for x in out.split() if x.isdigit()]

        counts = dict(zip(self.cluster.node_ids, parallel(leftovers, self.cluster.node_ids), strict=True))
        dirty = {n: c for n, c in counts.items() if any(c)}
        if any(c[:2] != [0, 0] for c in dirty.values() if len(c) >= 2):
            raise NemesisError(f"heal: harness iptables rules survive on {sorted(dirty)}")
        silent = self.cluster.wait_serving(self.cluster.node_ids, 10.0)
        return {"all_running": True, "no_rules_left": True, "netem_left": sorted(dirty), "silent_nodes": silent}
