"""Delay, duplication and reordering with the netem qdisc, on hosts whose kernel has it.

Each chosen node gets one netem root qdisc on its eth0 carrying every netem
setting currently active (a node has one root qdisc, so delay + duplicate
compose into one `tc qdisc replace`). Verified by reading the qdisc back; a
stop removes it when no netem fault is left. On a kernel without netem
(`netem_problem()`), the families' `problems()` refuse these faults before the
run and an operation that still asks for one raises NemesisError. The three
families (delay, duplicate, reorder) share one `Netem` per nemesis.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import subprocess
from typing import Any

from nemesis.chains import parallel
from nemesis.errors import NemesisError, NemesisOpError
from nemesis.family import FamilyBase, FaultContext, Sweep, netns_problem, node_list

DEVICE = "eth0"
KINDS = ("delay", "duplicate", "reorder")


@functools.cache
def netem_problem() -> str | None:
    """None when this kernel has netem, else a one-line reason (probed once per process)."""
    tc, unshare = shutil.which("tc"), shutil.which("unshare")
    if os.geteuid() == 0 and tc and unshare:
        res = subprocess.run(
            [unshare, "--net", tc, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
            capture_output=True, text=True, timeout=10,
        )
        if res.returncode == 0:
            return None
        detail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["unknown error"]
        return f"this kernel has no netem qdisc (tc says: {detail[0]})"
    return "cannot probe for netem here (needs root, tc and unshare on the harness host)"


def netem_args(settings: dict[str, dict[str, float]]) -> list[str]:
    """tc netem arguments for the active settings (kind -> its values). Pure."""
    args: list[str] = []
    if "delay" in settings or "reorder" in settings:
        d = settings.get("delay", {})
        # reorder needs a delay: reordered packets go at once, the rest wait.
        ms = d.get("delay_ms", settings.get("reorder", {}).get("delay_ms", 50))
        args += ["delay", f"{ms:g}ms"]
        if d.get("jitter_ms"):
            args += [f"{d['jitter_ms']:g}ms", "distribution", "normal"]
    if "reorder" in settings:
        args += ["reorder", f"{100 * settings['reorder'].get('probability', 0.25):g}%"]
    if "duplicate" in settings:
        args += ["duplicate", f"{100 * settings['duplicate'].get('probability', 0.1):g}%"]
    return args


def parse_value(kind: str, value: Any) -> dict[str, float]:
    """The settings of a start-<kind> op value; NemesisOpError when malformed. Pure."""
    value = value if isinstance(value, dict) else {}
    out: dict[str, float] = {}
    for key, default in {"delay": {"delay_ms": 100.0, "jitter_ms": 20.0},
                         "duplicate": {"probability": 0.1},
                         "reorder": {"probability": 0.25, "delay_ms": 50.0}}[kind].items():
        v = value.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise NemesisOpError(f"start-{kind}: {key} must be a non-negative number, got {v!r}")
        if key == "probability" and not 0 < v <= 1:
            raise NemesisOpError(f"start-{kind}: probability must be in (0, 1], got {v}")
        out[key] = float(v)
    return out


class Netem:
    def __init__(self, cluster):
        self.cluster = cluster
        self.settings: dict[str, dict[str, dict[str, float]]] = {}  # node -> kind -> values

    def _apply(self, node: str) -> str:
        s = self.settings.get(node)
        if s:
            script = f"tc qdisc replace dev {DEVICE} root netem {' '.join(netem_args(s))} && tc qdisc show dev {DEVICE}"
        else:
            script = f"tc qdisc del dev {DEVICE} root 2>/dev/null; tc qdisc show dev {DEVICE}"
        rc, out = self.cluster.exec_netns(node, ["sh", "-c", script])
        if rc != 0:
            raise NemesisError(f"netem on {node} failed (exit {rc}): {out.strip()[-300:]}")
        has = "netem" in out
        if has != bool(s):
            raise NemesisError(f"netem on {node}: qdisc shows {out.strip()!r}, expected netem={bool(s)}")
        return out.strip()

    def start(self, kind: str, nodes: list[str], values: dict[str, float], running: list[str]) -> dict[str, Any]:
        for n in nodes:
            self.settings.setdefault(n, {})[kind] = values
        targets = [n for n in nodes if n in running]
        shown = parallel(self._apply, targets)
        return {"verified": True, "qdisc": dict(zip(targets, shown, strict=True)),
                "unverified_nodes": sorted(set(nodes) - set(running))}

    def stop(self, kind: str | None, running: list[str]) -> dict[str, Any]:
        touched = []
        for n in list(self.settings):
            if kind is None:
                self.settings.pop(n)
            else:
                self.settings[n].pop(kind, None)
                if not self.settings[n]:
                    self.settings.pop(n)
            touched.append(n)
        targets = [n for n in touched if n in running]
        shown = parallel(self._apply, targets)
        return {"verified": True, "qdisc": dict(zip(targets, shown, strict=True))}

    def reapply(self, node: str) -> dict[str, Any] | None:
        if node not in self.settings:
            return None
        return {"reapplied": node, "qdisc": self._apply(node)}

    def active_kinds(self) -> list[str]:
        return sorted({k for s in self.settings.values() for k in s})


class _NetemFaults:
    def __init__(self, ctx: FaultContext, kind: str):
        self.ctx = ctx
        self.kind = kind
        self.netem = ctx.shared(Netem)

    def invoke(self, op: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        why = netem_problem()
        if why:
            raise NemesisError(f"{op['f']}: {why}")
        if op["f"].startswith("stop-"):
            return None, self.netem.stop(self.kind, self.ctx.alive())
        nodes, _ = self.ctx.resolve(op["nodes"], list(self.ctx.cluster.node_ids))
        return ({"nodes": nodes, **op["values"]},
                self.netem.start(self.kind, nodes, op["values"], self.ctx.alive()))

    def current(self) -> list[str]:
        return [self.kind] if self.kind in self.netem.active_kinds() else []

    def reapply(self, node: str) -> dict[str, Any] | None:
        # One qdisc carries every kind: one of the three families puts it back.
        return self.netem.reapply(node) if self.kind == KINDS[0] else None

    def after_restart(self, nodes: list[str], evidence: dict[str, Any]) -> dict[str, Any]:
        return {}

    def heal(self) -> dict[str, Any]:
        return {"stop-netem": self.netem.stop(None, self.ctx.alive())} if self.netem.settings else {}


class NetemFamily(FamilyBase):
    """Delay, duplication or reordering of a node's outgoing packets (needs the netem qdisc)."""

    heal_rank = 70
    # Counted, not fatal: a qdisc left over slows a node but corrupts nothing.
    sweep = Sweep(f"tc qdisc show dev {DEVICE} | grep -c netem || true", fatal=False)

    def __init__(self, kind: str):
        self.name = self.kind = kind
        self.start_op, self.stop_op = f"start-{kind}", f"stop-{kind}"
        self.ops = (self.start_op, self.stop_op)
        self.starts = (self.start_op,)

    def problems(self, cluster, target) -> list[str]:
        if netns_problem(cluster):
            return [f"{self.kind}: {netns_problem(cluster)}"]
        why = netem_problem()
        return [f"{self.kind} needs the netem qdisc: {why}"] if why else []

    def validate(self, op, node_ids):
        f, value = op["f"], op.get("value")
        if f == self.stop_op:
            return {"f": f}
        nodes = node_list(value, node_ids, f, allow_empty=True) or list(node_ids)
        return {"f": f, "kind": self.kind, "nodes": nodes, "values": parse_value(self.kind, value)}

    def injector(self, ctx):
        return _NetemFaults(ctx, self.kind)


DELAY, DUPLICATE, REORDER = (NetemFamily(kind) for kind in KINDS)
