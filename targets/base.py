"""The target plugin contract: how to build a system's image, start one node, talk to it and ask what it believes.

The harness, the nemesis and the workloads know targets only through this
module. A target is a class with a few methods (`Target`); its client turns a
workload operation into a request and classifies every outcome as `ok`,
`fail` (it certainly did not happen) or `info` (it may have happened).
docs/writing-a-target.md is the guide; `splitbrain new-target NAME` writes a
working package to start from.

Adding a target (etcd, Redis Sentinel, your own election code):

1. `image_recipe()` (targets.image.ImageRecipe): the files to copy, as
   (path in the image, file here); a path is relative to the recipe's
   workdir, /opt/splitbrain unless you change it, which is also the node's
   working directory, so ("mykv/node.py", ...) lands at
   /opt/splitbrain/mykv/node.py. Extra Debian packages (installed with apt
   in the target image's own build step, so dependencies and virtual
   packages resolve and the base is not rebuilt), environment and RUN
   lines go there too. The base image already has python3 (stdlib only),
   iproute2, iptables, procps, libfaketime, netcat and ping. The tag is a hash
   of all of it: editing a copied file rebuilds the image, nothing else does.
2. `node_command()`: argv of one node (the container's main process, PID 1;
   log to stdout/stderr, the logs land in the run folder). It is given every
   node's address (`ClusterLayout`: each node has its own IP, all use the
   same peer and client ports), and its data dir and cluster key file, which
   exist in the container before the node starts; the data dir survives a
   kill (the container is restarted, not recreated). `TargetOptions` carries
   the spec's bugs and `options:`, and `client_timeout`: how long the
   workload client waits for one operation before recording it `info`.
3. `node_environment()` (required; return {} for none): extra environment
   variables of the node. The harness sets none of its own, except for a
   FAKETIME target: LD_PRELOAD (libfaketime), FAKETIME_TIMESTAMP_FILE and
   libfaketime's cache settings, each only where node_environment did not
   set it (yours win).
4. `status_probe()`: what the node believes, {"role", "term", "leader"} at
   least ("commit_index" if it has one; "wall_time" and "clock_rate" for the
   clock nemesis); None when the node does not answer. The observer polls it
   every 50 ms and the split-brain checker reads nothing else.
5. `client()`: read / write / cas (and add / read for sets) with honest
   ok / fail / info (see `Client.invoke`).
6. `clock_control()`: CLOCK_FILE if the node reads our JSON clock file,
   FAKETIME for a dynamically linked process (libfaketime), None if neither;
   `unsupported_faults()` says what cannot work, before a run starts; `bugs()`
   the deliberate bugs `--bug` may name ({} for none).
7. Optionally `failpoints()` and `set_failpoint()`: crash points the node
   can arm on request; the vote-crash fault needs `crash-after-vote`,
   first-write-crash `crash-before-send-first-write`.
   Optionally `peer_auth()` (one line: how members authenticate each other,
   "none: ..." when they do not) and `impostor(Rogue) -> RoguePlan`: the
   argv of a rogue member of the target's own program, for the impostor
   fault (nemesis/impostor.py); a target without `impostor` refuses that
   fault before a run.
8. `data_dir(layout)`: the directory in the node that holds what it must
   keep across a crash (its log, snapshots, database files), under
   `layout.data_dir`. The disk faults (lose-unsynced, corrupt) act there; a
   target without it refuses them with one line before a run.
9. Register it: in your package's pyproject.toml,
   `[project.entry-points."splitbrain.targets"] mykv = "mykv.plugin:MyKV"`,
   then `pip install` it and run `--target mykv`; or, not installed, run
   `--target mykv.plugin:MyKV` with the package importable (PYTHONPATH).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from targets.image import ImageRecipe

# Fault families (the names of harness.spec.FAULTS) whose injection needs
# nothing from the target beyond running in a container of ours.
NETWORK_FAULTS = ("partition", "loss", "delay", "duplicate", "reorder")
PROCESS_FAULTS = ("kill", "pause")

# How a target's clock can be skewed (Target.clock_control):
CLOCK_FILE = "clock-file"  # the target reads a JSON {"offset_s", "rate"} file we write
FAKETIME = "faketime"  # the node runs under libfaketime with FAKETIME_TIMESTAMP_FILE we write
# libfaketime re-reads that file at most every FAKETIME_CACHE_S seconds (the harness sets
# FAKETIME_CACHE_DURATION: re-reading it on every clock call cost ~1000x a clock read), so a
# running node follows a new file within FAKETIME_FOLLOWS_WITHIN_S (it compares whole seconds).
FAKETIME_CACHE_S = 1
FAKETIME_FOLLOWS_WITHIN_S = FAKETIME_CACHE_S + 1
NO_CLOCK = None  # clock faults are unsupported


@dataclass(frozen=True)
class NodeAddress:
    id: str
    ip: str


@dataclass(frozen=True)
class ClusterLayout:
    """Where every node is and where its files live inside its container."""

    nodes: tuple[NodeAddress, ...]
    peer_port: int
    client_port: int
    data_dir: str = "/var/lib/splitbrain/data"
    cluster_key_file: str = "/var/lib/splitbrain/cluster.key"
    clock_file: str = "/var/lib/splitbrain/clock.json"
    faketime_file: str = "/var/lib/splitbrain/faketime.rc"

    @property
    def node_ids(self) -> list[str]:
        return [n.id for n in self.nodes]

    def ip(self, node_id: str) -> str:
        for n in self.nodes:
            if n.id == node_id:
                return n.ip
        raise KeyError(node_id)

    def peer_address(self, node_id: str) -> str:
        return f"{self.ip(node_id)}:{self.peer_port}"

    def client_address(self, node_id: str) -> str:
        return f"{self.ip(node_id)}:{self.client_port}"


@dataclass(frozen=True)
class TargetOptions:
    """What a run asks of the target: deliberate bugs, and target-specific settings (spec `options:`)."""

    bugs: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    # Seconds the workload client waits for one operation before it records
    # `info` and moves on (None: no workload client, e.g. the election bench).
    # A node that holds a request longer does work nobody waits for: give its
    # own request deadline (if it has one) a value below this.
    client_timeout: float | None = None


@dataclass(frozen=True)
class Rogue:
    """An impostor the impostor fault starts beside the members, on their network, from the target's image."""

    claim: str  # the member id it claims, or an id no member has
    address: tuple[str, int]  # (host, port) where it listens for peers
    members: dict[str, tuple[str, int]]  # every member's peer address
    term: int  # a term far ahead of any member's, for a program that can be told one
    # "wrong": a cluster key of its own; "none": no key at all (what that means is the target's);
    # "stolen": the run's own key, at key_file where the rogue runs (a leaked key: an experiment,
    # never drawn by a schedule)
    key: str
    key_file: str = ""


@dataclass(frozen=True)
class RoguePlan:
    """How to run a `Rogue`: its argv, and the term it campaigns in (None if the program cannot be told one)."""

    command: list[str]
    term: int | None


class SetReads:
    """Tells a set's read from a register's, for a client that stores them differently: a read of
    a key it has seen adds on (or one the workload marks "set") reads the set. `kind(op)` is the
    operation to perform: op's "f", or "read-set"."""

    def __init__(self) -> None:
        self._keys: set[str] = set()

    def kind(self, op: dict[str, Any]) -> str:
        f, key = op["f"], op.get("key")
        if f == "add":
            self._keys.add(str(key))
        elif f == "read" and (str(key) in self._keys or op.get("set")):
            return "read-set"
        return f


class Client(Protocol):
    async def invoke(self, node_id: str, op: dict[str, Any]) -> dict[str, Any]:
        """Perform op {"f", "key", "value"} on node_id.

        A workload op also carries "client": the harness's client slot that
        issues it, the same for every op of that slot (whatever its process
        number), for a target that keeps a connection or session per client
        as an application's processes each have their own. Final reads
        carry none.

        Returns {"type": "ok"|"fail"|"info", "value": ..., "error": str|None}, and
        optionally "node": the node that served it, when the client sent it
        elsewhere than node_id (a failover manager's current primary); the
        completion records that node, the invoke node_id.
        `fail` only when the operation certainly did not take effect (refused
        before sending, not the leader, cas mismatch); anything else that is
        not a success (timeout, reset after sending, 5xx) is `info`.
        """
        ...

    async def close(self) -> None: ...


class Target(Protocol):
    name: str
    peer_port: int  # the port nodes talk to each other on (the nemesis probes it)
    client_port: int

    def image_recipe(self) -> ImageRecipe:
        """What the node image holds: target source files and extra Debian packages."""
        ...

    def node_command(self, node_id: str, cluster: ClusterLayout, options: TargetOptions) -> list[str]:
        """argv that starts one node in its container (its main process; logs on stdout/stderr)."""
        ...

    def node_environment(self, node_id: str, cluster: ClusterLayout, options: TargetOptions) -> dict[str, str]:
        """Extra environment variables of a node's process (required; {} when there are none).

        Besides the image's own ENV (ImageRecipe.env, PATH, LANG), the harness
        sets only, for a FAKETIME target: LD_PRELOAD (libfaketime),
        FAKETIME_TIMESTAMP_FILE (cluster.faketime_file) and
        FAKETIME_CACHE_DURATION (FAKETIME_CACHE_S). A variable returned here
        overrides the harness's value of the same name.
        """
        ...

    def clock_control(self) -> str | None:
        """CLOCK_FILE, FAKETIME or None: how the nemesis may skew this target's clocks."""
        ...

    def client(self, addresses: dict[str, str], timeout: float = 1.0) -> Client:
        """A client for the workload; addresses maps node id -> "ip:port" of its client API.

        timeout is the spec's op_timeout (also given to nodes as TargetOptions.client_timeout).
        """
        ...

    async def status_probe(self, address: str, timeout: float = 0.5) -> dict[str, Any] | None:
        """What the node at address believes: {"role", "term", "leader", ...}; None when it does not answer.

        May carry "wall_time" (seconds since the epoch on the node's clock),
        which the clock nemesis uses to verify a skew took effect.
        """
        ...

    def unsupported_faults(self, faults: list[str] | tuple[str, ...]) -> list[str]:
        """One line per fault family this target cannot do, saying why (checked before a run)."""
        ...

    def bugs(self) -> dict[str, str]:
        """The deliberate bugs this target can be started with: name -> what it breaks."""
        ...

    # Optional (nemesis.core.target_failpoints looks for them):
    #   failpoints() -> dict[str, str]: name -> what happens there
    #   async set_failpoint(address, name, on) -> bool: arm or disarm one on a node; False if it did not take
    # Optional (nemesis.impostor looks for them):
    #   peer_auth() -> str: one line on how members authenticate each other ("none: ..." if they do not)
    #   impostor(rogue: Rogue) -> RoguePlan: a rogue member of this target's own program
    # Optional (nemesis.membership looks for it; the membership family requires it):
    #   async membership(address, action="show", member=None, timeout=2.0) -> (status | None, body):
    #   action "show" answers the node's configuration {"voters", "learners", "committed", ...};
    #   "add-learner", "promote", "remove" change it through the leader (200 once committed)
    # Optional (harness.commands.run.option_problems looks for it):
    #   unsupported_options(settings) -> list[str]: one line per spec `options:` entry it cannot run with
    # Optional (target_data_dir looks for it; the disk faults need it):
    #   data_dir(layout) -> str: the directory in a node that holds its durable state
    # Optional (harness.election_bench looks for it; `bench election` prints what an election cost):
    #   async election_counters(address, timeout) -> {"messages": n, "fsyncs": n} | None: running totals


def unsupported_by_clock_control(target: Target, faults) -> list[str]:
    """The common part of unsupported_faults: clock faults need a clock control."""
    if "clock" in faults and target.clock_control() is None:
        return [f"clock: target {target.name} has no clock control (neither a clock file nor libfaketime)"]
    return []


def option_problems(target: Target, settings: dict[str, Any]) -> list[str]:
    """One line per `options:` entry the target cannot run with ([] for a target without the optional
    unsupported_options), asked before anything starts."""
    check = getattr(target, "unsupported_options", None)
    return list(check(dict(settings))) if check else []


def target_data_dir(target: Target, layout: ClusterLayout) -> str | None:
    """Where a node of target keeps its durable state (its optional `data_dir`), or None: it declares none."""
    fn = getattr(target, "data_dir", None)
    return str(fn(layout)) if callable(fn) else None


def no_data_dir(target: Target, fault: str) -> list[str]:
    """The one line a disk fault gives before a run when the target declares no data dir ([] when it does)."""
    if callable(getattr(target, "data_dir", None)):
        return []
    return [f"{fault}: target {target.name} declares no data dir (Target.data_dir), so a disk fault has "
            "nothing of its own to act on"]
