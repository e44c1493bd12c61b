"""The lose-unsynced fault: nodes crash and lose every write they did not fsync, as machines that lose power.

A kill (nemesis/process.py) is a process crash: the page cache survives it, so a store that never fsyncs
passes every kill. This family makes the loss real, below the target, with a FUSE layer
(nemesis/unsyncedfs.py, Debian's fuse3 and python3-pyfuse3) mounted over the node's data dir
(`Target.data_dir`) in every node of a run whose nemesis names it: writes go through at once, and the layer
remembers, per file, the bytes it had at its last fsync.

`lose-unsynced` {nodes}: on each node at once, the layer puts back every file's synced bytes (a file
created since and never fsynced comes back empty), fsyncs, and holds every further request unanswered, so
the node neither sees nor writes anything more; then the node's container is killed (SIGKILL). Verified:
each layer answered with what it dropped (per file: sizes and sha256 before and after, bytes dropped) and
each node is down and silent. `restart-unsynced` restarts them; a restarted node finds exactly its
fsynced state under a new layer. Every restart, whoever makes it, checks the layer is mounted again and
holds nothing from before (`after_restart`); the heal restarts what this family left down and checks
every node's layer the same way: normal again, a passthrough that loses nothing unless the fault fires.

The seeded draw favours correlated loss (all nodes, or a majority, at once: a power cut), which is what
loses acknowledged writes of a replicated store that acknowledges before it is durable; one node or a
minority losing its unsynced tail is drawn too, which a correct store must also survive.

The layer never writes back on its own, as a kernel does within dirty_expire_centisecs (30 s by default):
what was written a minute before the fault and never fsynced is lost too, which shows every gap a store
leaves in its durability, including ones a real machine would close by itself after half a minute.

Containers get /dev/fuse and CAP_SYS_ADMIN (to mount), only in runs that use this family.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from nemesis.errors import NemesisError
from nemesis.family import LEADER, Draw, NodeFamily, NodeLayer, layer_problem
from nemesis.partition import parallel
from nemesis.process import Downed
from targets.base import no_data_dir, target_data_dir
from targets.image import ImageRecipe

HERE = Path(__file__).resolve().parent
LAYER_DIR = "/opt/splitbrain-layers"
PROGRAM = f"{LAYER_DIR}/lose-unsynced/unsyncedfs.py"
SOCKET = "/var/lib/splitbrain/unsyncedfs.sock"  # beside the cluster key, outside the data dir
REPORT = "/var/lib/splitbrain/unsyncedfs-drop.json"  # the last drop's answer, also written there
PACKAGES = ("fuse3", "python3-pyfuse3")
# Of a drawn loss: how many nodes lose their unsynced writes at once.
SHAPES = (("all", 0.5), ("majority", 0.2), ("minority", 0.2), ("one", 0.1))


def host_problem(dev: str = "/dev/fuse", filesystems: str = "/proc/filesystems") -> str | None:
    """Why this host cannot give containers a FUSE mount, or None: /dev/fuse and the kernel's fuse."""
    try:
        if not stat.S_ISCHR(os.stat(dev).st_mode):
            return f"{dev} is not a character device"
    except OSError:
        return f"this host has no {dev} (load the fuse module: modprobe fuse)"
    try:
        with open(filesystems) as f:
            if not any(line.split()[-1] == "fuse" for line in f if line.strip()):
                return "the kernel does not list fuse in /proc/filesystems (modprobe fuse)"
    except OSError:
        return f"cannot read {filesystems}"
    return None


def draw_nodes(rng, nodes: list[str], busy: set[str]) -> tuple[str, ...]:
    """The nodes of one drawn loss: all free nodes, a majority, a minority or one (the leader, half the time)."""
    free = sorted(n for n in nodes if n not in busy)
    if not free:
        return ()
    r, shape = rng.random(), SHAPES[-1][0]
    for name, p in SHAPES:
        if r < p:
            shape = name
            break
        r -= p
    majority = len(nodes) // 2 + 1
    if shape == "all":
        return tuple(free)
    if shape == "majority":
        return tuple(sorted(rng.sample(free, min(majority, len(free)))))
    if shape == "minority":
        return tuple(sorted(rng.sample(free, rng.randint(1, min(max(1, majority - 1), len(free))))))
    return (LEADER,) if not busy and rng.random() < 0.5 else (rng.choice(free),)


def wrap(target, argv: list[str], layout) -> list[str]:
    """The node's command under the layer: mount over the data dir, then exec the target's argv."""
    return ["python3", PROGRAM, "run", "--dir", target_data_dir(target, layout), "--socket", SOCKET, "--", *argv]


class _Losses(Downed):
    shown = "lost-unsynced"

    def _layered(self) -> bool:
        return any(layer.name == LOSE_UNSYNCED.name for layer in getattr(self.ctx.cluster, "layers", ()))

    def _ask(self, node: str, command: str, *extra: str) -> dict[str, Any]:
        rc, out = self.ctx.cluster.exec(node, ["python3", PROGRAM, command, "--socket", SOCKET, *extra], timeout=150)
        try:
            reply = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            reply = {"error": f"exit {rc}: {out.strip()[-300:] or '(no output)'}", "exit": rc}
        return reply

    def _drop(self, node: str) -> dict[str, Any]:
        # Stopped first (SIGSTOP from outside: only that reaches a container's PID 1), so the node runs
        # nothing from the instant of the crash; the layer stops its other processes itself.
        self.ctx.cluster.signal(node, "SIGSTOP")
        return self._ask(node, "drop", "--report", REPORT)

    def _reported(self, node: str, reply: dict[str, Any]) -> dict[str, Any]:
        """A drop that exited 0 but whose output Docker lost (seen once at load 40): its report file."""
        if "error" not in reply or reply.get("exit") != 0:
            return reply
        try:
            found = json.loads(self.ctx.cluster.read_file(node, REPORT) or b"")
        except ValueError:
            return reply
        return {**found, "report": "read from its file: the command's output was lost"}

    def invoke(self, op: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if op["f"] == LOSE_UNSYNCED.stop_op:
            return self.restart(op)
        if not self._layered():
            raise NemesisError("lose-unsynced: the nodes have no unsynced layer (the cluster was built without "
                               "the family's NodeLayer)")
        nodes, notes = self.victims(op)
        if not nodes:
            return [], {"note": "every chosen node was down or paused", **notes}
        replies = dict(zip(nodes, parallel(self._drop, nodes), strict=True))
        # Kill at once even if one layer failed: the others are frozen and must not stay so.
        killed = parallel(lambda n: self.procs.kill([n]), nodes)
        self.down |= set(nodes)
        replies = {n: self._reported(n, r) for n, r in replies.items()}
        failed = {n: r["error"] for n, r in replies.items() if "error" in r}
        if failed:
            raise NemesisError(f"lose-unsynced: the layer did not drop on {', '.join(sorted(failed))}: "
                               f"{next(iter(failed.values()))}")
        # Files the layer tracked but that lost nothing (written and fsynced, or created empty) are counted, not listed.
        evidence = {n: {"dropped_files": r["dropped_files"], "dropped_bytes": r["dropped_bytes"],
                        "files": {f: v for f, v in r["files"].items() if v["dropped_bytes"]},
                        "tracked_files": len(r["files"]), "skipped": r.get("skipped", {}),
                        "stopped_processes": r.get("stopped_processes"),
                        **({"report": r["report"]} if "report" in r else {}),
                        "since_restart": {"writes": r.get("writes"), "fsyncs": r.get("fsyncs")},
                        **k["nodes"][n]}
                    for (n, r), k in zip(replies.items(), killed, strict=True)}
        total = sum(e["dropped_bytes"] for e in evidence.values())
        return nodes, {"verified": True, "dropped_bytes": total, "nodes": evidence, **notes}

    def after_restart(self, nodes: list[str], evidence: dict[str, Any]) -> dict[str, Any]:
        if not self._layered() or not nodes:
            return {}
        return {"unsynced_layer": self._check(nodes)}

    def _check(self, nodes: list[str]) -> dict[str, Any]:
        """Each node's layer is mounted and serving, not frozen: a restarted node starts clean. A node
        that exited as it started (it refused what it found on its disk) has no layer to ask: said."""
        out: dict[str, Any] = {}
        codes = self.ctx.cluster.exit_codes()
        for n in [n for n in nodes if codes.get(n) is not None]:
            out[n] = {"running": False, "exit_code": codes[n]}
        nodes = [n for n in nodes if n not in out]
        for n, r in zip(nodes, parallel(lambda n: self._ask(n, "status"), nodes), strict=True):
            if "error" in r or not r.get("mounted") or r.get("frozen"):
                raise NemesisError(f"lose-unsynced: {n}'s layer is not back after its restart: "
                                   f"{r.get('error') or r}")
            out[n] = {"mounted": True, "tracked_files": r["tracked_files"], "up_s": r["up_s"]}
        return out

    def heal(self) -> dict[str, Any]:
        done: dict[str, Any] = {}
        started = self.restart_left()
        if started:
            done["restart-unsynced"] = started
        if self._layered():
            done["unsynced-layer"] = self._check(list(self.ctx.cluster.node_ids))
            bricked = {n: v["exit_code"] for n, v in done["unsynced-layer"].items() if not v.get("mounted")}
            if bricked:
                # Not the harness's failure: the target cannot start from its own fsynced state.
                raise NemesisError(f"lose-unsynced: {', '.join(sorted(bricked))} do not start again after losing "
                                   f"what they had not fsynced (exit {sorted(set(bricked.values()))}); "
                                   "the target's durability, see the node logs")
        return done


class LoseUnsyncedFamily(NodeFamily):
    name = "lose-unsynced"
    ops = ("lose-unsynced", "restart-unsynced")
    leader_ops = frozenset({"lose-unsynced"})
    heal_rank = 25  # after thawing and restarting killed nodes, before the network is healed
    bounce_chance = 0.4

    def problems(self, cluster, target) -> list[str]:
        out = no_data_dir(target, self.name)
        why = layer_problem(cluster, self.name) or host_problem()
        return out + ([f"{self.name}: {why}"] if why else [])

    def node_layer(self, target) -> NodeLayer:
        image = ImageRecipe(name="unsyncedfs", files=(("lose-unsynced/unsyncedfs.py", HERE / "unsyncedfs.py"),),
                            packages=PACKAGES, workdir=LAYER_DIR)
        return NodeLayer(self.name, image, devices=("/dev/fuse",), cap_add=("SYS_ADMIN",),
                         wrap=lambda argv, layout: wrap(target, argv, layout))

    def injector(self, ctx):
        return _Losses(ctx)

    def draw(self, rng, nodes, busy, target=None):
        hit = draw_nodes(rng, nodes, busy)
        return Draw(self.start_op, {"nodes": list(hit)}, hit) if hit else None

    def strategy(self, nodes):
        from hypothesis import strategies as st

        return st.fixed_dictionaries({"nodes": st.one_of(
            st.just(sorted(nodes)), st.just([LEADER]),
            st.lists(st.sampled_from(sorted(nodes)), min_size=1, max_size=len(nodes), unique=True).map(sorted))})

    def label(self, f, value):
        return "lose-unsynced" if f == self.start_op else f


LOSE_UNSYNCED = LoseUnsyncedFamily()
