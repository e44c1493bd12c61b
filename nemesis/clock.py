"""Clock faults without touching the host clock: a per-node control file the node's clock reads.

Two mechanisms, chosen by the target (`Target.clock_control()`):

- CLOCK_FILE (raftkv): JSON {"offset_s", "rate"} at layout.clock_file; the
  node re-reads it while running.
- FAKETIME (other dynamically linked targets): libfaketime's
  FAKETIME_TIMESTAMP_FILE at layout.faketime_file, e.g. "+5.000 x2".

Files are replaced atomically (tar to a temp name, rename), or written
directly into a paused container, whose process cannot be mid-read.
A strobe is a small loop inside the container that flips the offset every
period (the node samples it about every 100 ms).

Verification: a skewed node must report the skewed time (its status
`wall_time`, or `date` run under the node's own LD_PRELOAD for faketime)
within a tolerance; a rate change is verified by reading the file back,
since a node's wall time does not show its tick rate.
"""

from __future__ import annotations

import json
import shlex
import time
from typing import Any

from nemesis.errors import NemesisError
from nemesis.partition import parallel
from targets.base import CLOCK_FILE, FAKETIME, FAKETIME_FOLLOWS_WITHIN_S

TOLERANCE_S = 0.5
STROBE_PID = "/var/lib/splitbrain/strobe.pid"


def faketime_spec(offset_s: float, rate: float) -> str:
    spec = f"{offset_s:+.3f}"
    if rate != 1.0:
        spec += f" x{rate:g}"
    return spec


class Clocks:
    def __init__(self, cluster, control: str | None):
        self.cluster = cluster
        self.control = control
        self.settings: dict[str, dict[str, float]] = {}  # node -> {"offset_s", "rate"} when not default
        self.strobing: dict[str, dict[str, float]] = {}

    @property
    def path(self) -> str:
        layout = self.cluster.layout
        return layout.clock_file if self.control == CLOCK_FILE else layout.faketime_file

    def _content(self, offset_s: float, rate: float) -> bytes:
        if self.control == CLOCK_FILE:
            return json.dumps({"offset_s": offset_s, "rate": rate}).encode()
        return (faketime_spec(offset_s, rate) + "\n").encode()

    def _write(self, node: str, offset_s: float, rate: float) -> None:
        data = self._content(offset_s, rate)
        if self.cluster.state(node) == "running":
            self.cluster.put_file(node, self.path, data)
            if self.control == FAKETIME:
                # The node's libfaketime caches the file; the fault is on once it has followed.
                time.sleep(FAKETIME_FOLLOWS_WITHIN_S)
        else:  # paused or stopped: nothing reads the file right now, write it in place
            from harness.cluster import _tar

            self.cluster.container(node).put_archive("/", _tar({self.path: data}))

    def node_time(self, node: str) -> float | None:
        """Seconds since the epoch on node's clock, None when it cannot be asked."""
        if self.control == CLOCK_FILE:
            status = self.cluster.probe(node, timeout=0.5)
            wt = (status or {}).get("wall_time")
            return float(wt) if isinstance(wt, (int, float)) else None
        if self.cluster.state(node) != "running":
            return None
        rc, out = self.cluster.exec(node, ["date", "+%s.%N"])
        try:
            return float(out.strip()) if rc == 0 else None
        except ValueError:
            return None

    def verify_offset(self, node: str, offset_s: float, wait: float = 2.0) -> dict[str, Any]:
        """Poll until the node reports host time + offset (within tolerance); evidence, or NemesisError."""
        if self.cluster.state(node) != "running":
            return {"node": node, "verified": False, "why": f"node is {self.cluster.state(node)}; checked when it runs"}
        deadline = time.monotonic() + wait
        observed = None
        while time.monotonic() < deadline:
            before = time.time()
            t = self.node_time(node)
            after = time.time()
            if t is not None:
                observed = t - (before + after) / 2
                if abs(observed - offset_s) <= TOLERANCE_S + (after - before):
                    return {"node": node, "verified": True, "expected_skew_s": offset_s,
                            "observed_skew_s": round(observed, 3)}
            time.sleep(0.1)
        if observed is None:
            return {"node": node, "verified": False, "why": "node did not report its time"}
        raise NemesisError(f"clock on {node}: expected skew {offset_s:+.3f}s, node reports {observed:+.3f}s")

    def bump(self, changes: dict[str, dict[str, float]]) -> dict[str, Any]:
        """changes: node -> {"offset_s", "rate"} (absolute settings). Write, then verify."""
        for node in changes:
            self._stop_strobe(node)

        def apply(item):
            node, s = item
            prev_rate = self.settings.get(node, {}).get("rate", 1.0)
            self._write(node, s["offset_s"], s["rate"])
            self.settings[node] = dict(s)
            ev = self.verify_offset(node, s["offset_s"])
            if s["rate"] != 1.0 or prev_rate != 1.0:
                ev.update(self._verify_rate(node, s["rate"]))
            return ev

        return {"nodes": parallel(apply, sorted(changes.items()))}

    def _verify_rate(self, node: str, rate: float, wait: float = 2.0) -> dict[str, Any]:
        """A rate does not show in wall time: ask the node's status for clock_rate, else read the file back."""
        deadline = time.monotonic() + wait
        reported = None
        while self.control == CLOCK_FILE and time.monotonic() < deadline:
            reported = (self.cluster.probe(node, timeout=0.5) or {}).get("clock_rate")
            if reported is None:
                break  # this target does not report its rate
            if abs(float(reported) - rate) < 1e-9:
                return {"rate": rate, "rate_verified": True, "reported_rate": reported}
            time.sleep(0.1)
        if reported is not None:
            raise NemesisError(f"clock rate on {node}: set {rate}, node reports {reported}")
        return {"rate": rate, "rate_verified": False, "rate_file": self._read_back(node)}

    def _read_back(self, node: str) -> str | None:
        if self.cluster.state(node) != "running":
            return None
        rc, out = self.cluster.exec(node, ["cat", self.path])
        return out.strip() if rc == 0 else None

    def strobe(self, nodes: list[str], delta_s: float, period_s: float) -> dict[str, Any]:
        """Flip each node's offset between 0 and delta every period, by a loop inside its container."""
        if self.control != CLOCK_FILE:
            raise NemesisError("strobe-clock is only implemented for targets with a clock file")
        evidence = []
        for node in nodes:
            self._stop_strobe(node)
            if self.cluster.state(node) != "running":
                evidence.append({"node": node, "verified": False, "why": "node not running"})
                continue
            a, b = self._content(0.0, 1.0).decode(), self._content(delta_s, 1.0).decode()
            loop = (
                "import os, sys, time\n"
                f"path, a, b, p = {self.path!r}, {a!r}, {b!r}, {period_s!r}\n"
                f"open({STROBE_PID!r}, 'w').write(str(os.getpid()))\n"
                "i = 0\n"
                "while True:\n"
                "    tmp = path + '.strobe'\n"
                "    with open(tmp, 'w') as f: f.write(b if i % 2 == 0 else a)\n"
                "    os.replace(tmp, path); i += 1; time.sleep(p)\n"
            )
            self.cluster.container(node).exec_run(["python3", "-c", loop], detach=True)
            self.strobing[node] = {"delta_s": delta_s, "period_s": period_s}
            evidence.append(self._verify_strobe(node, delta_s, period_s))
        return {"nodes": evidence}

    def _verify_strobe(self, node: str, delta_s: float, period_s: float) -> dict[str, Any]:
        samples = []
        deadline = time.monotonic() + max(2.0, 6 * period_s)
        while time.monotonic() < deadline:
            before = time.time()
            t = self.node_time(node)
            if t is not None:
                samples.append(round(t - before, 3))
            spread = max(samples) - min(samples) if samples else 0
            if len(samples) >= 2 and spread >= abs(delta_s) / 2:
                return {"node": node, "verified": True, "delta_s": delta_s, "period_s": period_s,
                        "observed_skews_s": samples[-6:]}
            time.sleep(max(0.05, period_s / 2))
        if not samples:
            return {"node": node, "verified": False, "why": "node did not report its time"}
        raise NemesisError(f"strobe on {node}: skew never moved by {delta_s}s (samples {samples[-6:]})")

    def _stop_strobe(self, node: str) -> None:
        if self.strobing.pop(node, None) is None:
            return
        if self.cluster.state(node) == "running":
            self.cluster.exec(node, ["sh", "-c", f"kill $(cat {shlex.quote(STROBE_PID)}) 2>/dev/null; rm -f {STROBE_PID}"])

    def reset(self, nodes: list[str] | None = None) -> dict[str, Any]:
        """Back to offset 0, rate 1 on nodes (default: every node with a skew or strobe); verified."""
        nodes = sorted(set(nodes if nodes is not None else list(self.settings) + list(self.strobing)))
        for node in nodes:
            self._stop_strobe(node)

        def apply(node):
            prev_rate = self.settings.pop(node, {}).get("rate", 1.0)
            self._write(node, 0.0, 1.0)
            ev = self.verify_offset(node, 0.0)
            if prev_rate != 1.0 and ev.get("verified"):
                ev.update(self._verify_rate(node, 1.0))
            return ev

        return {"nodes": parallel(apply, nodes)}

    @property
    def skewed(self) -> list[str]:
        return sorted(set(self.settings) | set(self.strobing))
