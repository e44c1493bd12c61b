"""Delay, duplication and reordering with the netem qdisc, on hosts whose kernel has it.

Each chosen node gets one netem root qdisc on its eth0 carrying every netem
setting currently active (a node has one root qdisc, so delay + duplicate
compose into one `tc qdisc replace`). Verified by reading the qdisc back; a
stop removes it when no netem fault is left. On a kernel without netem
(`loss.netem_problem()`), `Nemesis.problems()` refuses these faults before the
run and an operation that still asks for one raises NemesisError.
"""

from __future__ import annotations

import math
from typing import Any

from nemesis.errors import NemesisError, NemesisOpError
from nemesis.partition import parallel

DEVICE = "eth0"
KINDS = ("delay", "duplicate", "reorder")


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
