"""What a fault family is: one value that knows its ops, how they are injected, verified, healed and reported.

A family lives in its own module and is registered once (`nemesis.registry`);
the spec, the schedule, the nemesis, the runner, the report, the hypothesis
strategies and the split-brain checker's failover timeline all ask it, so
nothing else knows a fault by name. Its parts:

- `FaultFamily`: the facts, pure (names, ops, validation, draws, labels, which
  nodes an op hit, does it hit the leader). `FamilyBase` gives the defaults.
- `Injector`: the per-run state one family keeps while it drives a cluster.
- `ClusterControl`: what an injector may do to the nodes (start, kill, pause,
  exec in a node's network namespace, copy a file in, ask for states and
  statuses). The Docker backend (harness.cluster.DockerCluster) and the
  loopback one (targets.raftkv.loopback.LocalCluster: local processes, no
  network namespaces) implement it; test backends can too.

docs/fault-families.md shows a family written from scratch.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from nemesis.errors import NemesisOpError
from targets.base import ClusterLayout
from targets.image import ImageRecipe

LEADER = "leader"  # symbolic node: the run loop substitutes the observed leader
SYMBOLIC = (LEADER, "random")


class ClusterControl(Protocol):
    """The nodes as a fault family drives them. Node ids are "n1".."nN"; every call is synchronous."""

    node_ids: list[str]
    ips: dict[str, str]  # node -> its address on the cluster network
    layout: Any  # targets.base.ClusterLayout: where the node's files live
    netns: bool  # each node has its own network namespace (exec_netns works); loopback: False
    node_layers: bool  # it gives nodes the NodeLayer of a family that asks (Docker); loopback: False

    def states(self) -> dict[str, str]: ...  # node -> running | paused | exited | missing ...
    def state(self, node: str) -> str: ...
    def exit_codes(self) -> dict[str, int | None]: ...  # None: not exited
    def kill(self, node: str) -> None: ...  # SIGKILL; returns once it is gone
    def signal(self, node: str, sig: str) -> None: ...  # e.g. "SIGSTOP" to the node's process (Docker only)
    def start(self, node: str) -> None: ...
    def pause(self, node: str) -> None: ...
    def resume(self, node: str) -> None: ...
    def exec(self, node: str, cmd: list[str], timeout: float | None = None) -> tuple[int, str]: ...
    def exec_netns(self, node: str, cmd: list[str]) -> tuple[int, str]: ...  # also while paused
    def exec_detached(self, node: str, cmd: list[str]) -> None: ...  # a background loop inside the node
    def put_file(self, node: str, path: str, data: bytes) -> None: ...  # atomically, while it runs
    def write_file(self, node: str, path: str, data: bytes) -> None: ...  # in place, while paused or down
    def read_file(self, node: str, path: str) -> bytes | None: ...  # also while down; None: no such file
    def probe(self, node: str, timeout: float = 0.5) -> dict | None: ...  # the target's status probe
    def probe_some(self, nodes: list[str], timeout: float = 0.5) -> dict[str, dict | None]: ...
    def probe_all(self, timeout: float = 0.5) -> dict[str, dict | None]: ...
    def wait_serving(self, nodes: list[str], timeout: float) -> list[str]: ...  # those still silent
    def set_failpoint(self, node: str, name: str, on: bool) -> bool: ...
    # The target's membership admin API (Target.membership; the membership family): (status | None, body).
    def membership(self, node: str, action: str = "show", member: str | None = None,
                   timeout: float = 2.0) -> tuple[int | None, dict]: ...
    # Rogue members beside the nodes (the impostor family); a backend without them refuses it.
    def peer_address(self, node: str) -> tuple[str, int]: ...
    def rogue_address(self, name: str) -> tuple[str, int]: ...  # where rogue `name` will listen
    def rogue_key_path(self) -> str: ...  # where a rogue started with_key finds the run's cluster key
    def start_rogue(self, name: str, command: list[str], with_key: bool = False) -> None: ...  # the nodes' image
    def rogue_state(self, name: str) -> str: ...  # running | exited | missing ...
    def rogue_exec(self, name: str, cmd: list[str]) -> tuple[int, str]: ...  # from where the rogue runs
    def rogue_log(self, name: str) -> str: ...
    def remove_rogue(self, name: str) -> None: ...


def netns_problem(cluster: Any) -> str | None:
    """Why a network fault cannot run on this cluster, or None: each node has a network namespace of its own
    (`ClusterControl.netns`; a cluster that does not say has one)."""
    if getattr(cluster, "netns", True):
        return None
    return ("the nodes of this cluster share one network (loopback processes), with no namespace of their own "
            "for iptables or tc; use the Docker backend")


class Injector(Protocol):
    """One family's state during one run, against one cluster."""

    def invoke(self, op: dict[str, Any]) -> tuple[Any, dict[str, Any]]: ...  # normal form in; (value, evidence)
    def current(self) -> list[str]: ...  # what is in force now, for the progress line
    def reapply(self, node: str) -> dict[str, Any] | None: ...  # a restarted node lost it: put it back
    def after_restart(self, nodes: list[str], evidence: dict[str, Any]) -> dict[str, Any]: ...  # extra checks
    def heal(self) -> dict[str, Any]: ...  # undo everything, verified; {step: evidence}, {} if nothing to undo


def layer_problem(cluster: Any, name: str) -> str | None:
    """Why a family that needs a `NodeLayer` cannot run on this cluster, or None (a cluster that does not say
    gives its nodes layers, as the Docker backend does)."""
    if getattr(cluster, "node_layers", True):
        return None
    return (f"{name} needs its layer in every node's container (an image layer, a device, a command wrapper), "
            "which this cluster (loopback processes) cannot give; use the Docker backend")


@dataclass(frozen=True)
class NodeLayer:
    """What a family needs in every node of a run that uses it, beyond the target's own image and container.

    The Docker backend builds `image` FROM the target's image (its packages with apt, its files under
    `image.workdir`; tagged by content like any target image), gives each container `devices` (host paths)
    and `cap_add`, and starts each node as `wrap(argv, layout)` of the target's command: a wrapper that
    sets something up and then execs argv, so the node stays PID 1. Runs whose nemesis lacks the family
    get none of it."""

    name: str
    image: ImageRecipe
    devices: tuple[str, ...] = ()
    cap_add: tuple[str, ...] = ()
    wrap: Callable[[list[str], ClusterLayout], list[str]] | None = None


@dataclass(frozen=True)
class ScheduledOp:
    """One nemesis operation at `at` seconds after the fault phase began (nemesis.schedule plays them)."""

    at: float
    family: str
    f: str
    value: Any = None
    # A bounce's restart: due `at`, but it follows its kill however long the kill took,
    # so its lateness is not the schedule falling behind.
    follows: bool = False

    def op(self) -> dict[str, Any]:
        return {"f": self.f, "value": self.value}


@dataclass(frozen=True)
class Draw:
    """A start op the schedule drew: its name and value, and the nodes it keeps busy until it stops."""

    f: str
    value: Any
    reserved: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sweep:
    """A shell snippet the final check runs on every node: it removes what the family left, printing a count."""

    script: str
    fatal: bool  # leftovers mean the heal failed (else they are only noted)


class FaultFamily(Protocol):
    name: str
    ops: tuple[str, ...]  # every op it understands; start_op and stop_op among them
    start_op: str  # what the schedule starts it with (a draw may pick another of `starts`)
    stop_op: str
    starts: tuple[str, ...]  # ops that begin a band in the report
    bounce_chance: float  # of a drawn start: stop again within a second (kills)
    heal_rank: int  # heal order: lower first (every family heals, asked for or not)
    sweep: Sweep | None

    def problems(self, cluster: Any, target: Any) -> list[str]: ...  # what this host/target cannot do
    def node_layer(self, target: Any) -> NodeLayer | None: ...  # what every node needs for it, or None
    def refuses(self, f: str, target: Any) -> str | None: ...  # one op this target cannot do
    def validate(self, op: dict[str, Any], node_ids: list[str]) -> dict[str, Any]: ...  # normal form
    def injector(self, ctx: FaultContext) -> Injector: ...
    def draw(self, rng: random.Random, nodes: list[str], busy: set[str], target: Any = None) -> Draw | None: ...
    def stop_value(self, reserved: tuple[str, ...]) -> Any: ...  # the scheduled stop's value
    def strategy(self, nodes: list[str]) -> Any: ...  # hypothesis strategy of start values, or None
    def hit(self, op: dict[str, Any], done: Any) -> list[str] | None: ...  # nodes a start op really hit
    def aim_stop(self, op: dict[str, Any], hit: list[str]) -> dict[str, Any]: ...  # stop what it hit
    def nodes_hit(self, f: str, value: Any) -> list[str]: ...  # for the report's band
    def hits_leader(self, f: str) -> bool: ...  # the failover timeline measures after it
    def cut_off(self, value: Any) -> list[str] | None: ...  # nodes left without a majority, if it cuts
    def label(self, f: str, value: Any) -> str: ...  # the band's label
    def describe(self, op: dict[str, Any]) -> str: ...  # one phrase for the progress line
    def facts(self, f: str, value: Any) -> dict[str, Any]: ...  # more for the checkers (an impostor's id, term)


@dataclass
class FaultContext:
    """What every injector of one nemesis shares: the cluster, the target, the rng and a few common services."""

    cluster: ClusterControl
    target: Any
    rng: random.Random
    restart: Callable[[list[str]], dict[str, Any]]  # start nodes and give them their faults back
    # Nodes where packets may drop by chance right now (the loss family sets it; a partition's check allows it).
    lossy: Callable[[], list[str]] = list
    _shared: dict[type, Any] = field(default_factory=dict)

    def shared(self, kind: type) -> Any:
        """One `kind(cluster)` per nemesis, for mechanisms several families drive (processes, netem)."""
        if kind not in self._shared:
            self._shared[kind] = kind(self.cluster)
        return self._shared[kind]

    def alive(self) -> list[str]:
        """Nodes whose network namespace exists (running or paused)."""
        states = self.cluster.states()
        return [n for n in self.cluster.node_ids if states[n] in ("running", "paused")]

    def leader(self) -> str | None:
        """The node that claims leadership in the highest term, per the status probes."""
        statuses = self.cluster.probe_all(timeout=0.5)
        leaders = [(s.get("term") or 0, n) for n, s in statuses.items() if s and s.get("role") == "leader"]
        return max(leaders)[1] if leaders else None

    def resolve(self, nodes: list[str], pool: list[str]) -> tuple[list[str], dict]:
        """Replace "leader"/"random" by node ids (from pool); notes for the evidence."""
        out, notes = [], {}
        for n in nodes:
            if n == LEADER:
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


def unmet_requirements(fam: Any, target: Any) -> list[str]:
    """The one line a family gives when the target lacks a method it `requires` ([] when it has them all)."""
    missing = [r for r in getattr(fam, "requires", ()) if not callable(getattr(target, r, None))]
    if not missing or target is None:
        return []
    return [f"{fam.name}: target {getattr(target, 'name', target)} has no {', '.join(m + '()' for m in missing)}, "
            f"which this fault family needs (see targets/base.py)"]


def node_list(value: Any, node_ids: list[str], f: str, allow_empty: bool) -> list[str]:
    """The nodes an op's value names ({"nodes": [...]}, a list, one id, or None), checked against node_ids."""
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


def number(x: Any, f: str, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise NemesisOpError(f"{f}: {what} must be a finite number, got {x!r}")
    return float(x)


def minority(rng: random.Random, nodes: list[str]) -> list[str]:
    """A random minority of nodes (at least one), sorted."""
    k = rng.randint(1, max(1, (len(nodes) - 1) // 2))
    return sorted(rng.sample(nodes, k))


class FamilyBase:
    """Defaults for a `FaultFamily`: a subclass sets the names and writes `validate`, `injector` and `draw`."""

    name = ""
    ops: tuple[str, ...] = ()
    start_op = ""
    stop_op = ""
    starts: tuple[str, ...] = ()
    bounce_chance = 0.0
    heal_rank = 50
    sweep: Sweep | None = None
    leader_ops: frozenset[str] = frozenset()  # the ops after which `hits_leader`
    # Optional Target methods this family cannot run without (the membership family: "membership"): a target
    # that lacks one refuses the family before the run, with one line (`unmet_requirements`).
    requires: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # `ops = (start, stop, ...)` is enough: the first two start and stop it, and the start begins a band.
        super().__init_subclass__(**kwargs)
        if len(cls.ops) >= 2 and "start_op" not in cls.__dict__:
            cls.start_op, cls.stop_op = cls.ops[0], cls.ops[1]
        if cls.start_op and "starts" not in cls.__dict__:
            cls.starts = (cls.start_op,)

    def problems(self, cluster: Any, target: Any) -> list[str]:
        return []

    def node_layer(self, target: Any) -> NodeLayer | None:
        return None

    def refuses(self, f: str, target: Any) -> str | None:
        unmet = unmet_requirements(self, target)
        return unmet[0] if unmet else None

    def validate(self, op: dict[str, Any], node_ids: list[str]) -> dict[str, Any]:
        return {"f": op["f"]}

    def injector(self, ctx: FaultContext) -> Injector:
        raise NotImplementedError(f"fault family {self.name} has no injector")

    def draw(self, rng: random.Random, nodes: list[str], busy: set[str], target: Any = None) -> Draw | None:
        return Draw(self.start_op, {"nodes": sorted(nodes)})

    def stop_value(self, reserved: tuple[str, ...]) -> Any:
        return None

    def strategy(self, nodes: list[str]) -> Any:
        return None

    def hit(self, op: dict[str, Any], done: Any) -> list[str] | None:
        value = op.get("value")
        return list(value["nodes"]) if isinstance(value, dict) and "nodes" in value else None

    def aim_stop(self, op: dict[str, Any], hit: list[str]) -> dict[str, Any]:
        return op

    def nodes_hit(self, f: str, value: Any) -> list[str]:
        if isinstance(value, dict) and isinstance(value.get("nodes"), list):
            return [str(n) for n in value["nodes"]]
        if isinstance(value, list):
            return [str(n) for n in value if isinstance(n, str)]
        return [value] if isinstance(value, str) else []

    def hits_leader(self, f: str) -> bool:
        return f in self.leader_ops

    def cut_off(self, value: Any) -> list[str] | None:
        return None

    def facts(self, f: str, value: Any) -> dict[str, Any]:
        return {}

    def label(self, f: str, value: Any) -> str:
        return f

    def describe(self, op: dict[str, Any]) -> str:
        value = op.get("value")
        if isinstance(value, dict) and "nodes" in value:
            return f"{op['f']} {','.join(map(str, value['nodes']))}"
        return op["f"]

    # ---- hand-written schedules: `partition.start(at=1.0, grudge="halves")`, `partition.stop(at=3.0)`

    def start(self, at: float, f: str | None = None, value: Any = None, **fields: Any) -> ScheduledOp:
        """A scheduled start op at `at` seconds (f: another of its ops); its value from `value` or keyword fields.
        `nemesis.schedule.parse_schedule` validates it against the nodes and the target."""
        return self._scheduled(at, f or self.start_op, value if value is not None or not fields else fields)

    def stop(self, at: float, value: Any = None, **fields: Any) -> ScheduledOp:
        """A scheduled stop op at `at` seconds (the run loop aims it at what the start hit)."""
        return self._scheduled(at, self.stop_op, value if value is not None or not fields else fields)

    def _scheduled(self, at: float, f: str, value: Any) -> ScheduledOp:
        if f not in self.ops:
            raise NemesisOpError(f"fault family {self.name} has no op {f!r}; its ops: {', '.join(self.ops)}")
        return ScheduledOp(float(at), self.name, f, value)


class NodeFamily(FamilyBase):
    """A family whose start hits a few nodes and whose stop must undo exactly those (kill, pause)."""

    def validate(self, op: dict[str, Any], node_ids: list[str]) -> dict[str, Any]:
        # A start needs its victims; a stop without nodes undoes every node the family hit.
        f = op["f"]
        return {"f": f, "nodes": node_list(op.get("value"), node_ids, f, allow_empty=f == self.stop_op)}

    def stop_value(self, reserved: tuple[str, ...]) -> Any:
        return {"nodes": list(reserved)}

    def hit(self, op: dict[str, Any], done: Any) -> list[str] | None:
        return list(done) if isinstance(done, list) else super().hit(op, done)

    def aim_stop(self, op: dict[str, Any], hit: list[str]) -> dict[str, Any]:
        return {**op, "value": {**(op.get("value") or {}), "nodes": hit}}
