"""The clock fault family, without touching the host clock: a per-node control file the node's clock reads.

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

from nemesis.chains import parallel
from nemesis.errors import NemesisError, NemesisOpError
from nemesis.family import LEADER, Draw, FamilyBase, FaultContext, minority, node_list, number
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
            self.cluster.write_file(node, self.path, data)

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
            self.cluster.exec_detached(node, ["python3", "-c", loop])
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


class _ClockFaults:
    def __init__(self, ctx: FaultContext):
        self.ctx = ctx
        self.clocks = Clocks(ctx.cluster, ctx.target.clock_control())

    def invoke(self, op: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if self.ctx.target.clock_control() is None:
            raise NemesisError(f"target {self.ctx.target.name} has no clock control")
        f, ids, clocks = op["f"], list(self.ctx.cluster.node_ids), self.clocks
        if f == "reset-clock":
            ev = clocks.reset(op["nodes"])
            return [e["node"] for e in ev["nodes"]], ev
        nodes, _ = self.ctx.resolve(op["nodes"], ids)
        if f == "strobe-clock":
            return ({"nodes": nodes, "delta_s": op["delta_s"], "period_s": op["period_s"]},
                    clocks.strobe(nodes, op["delta_s"], op["period_s"]))
        if op["absolute"] is not None:
            changes = {n: {"offset_s": off, "rate": 1.0} for n, off in op["absolute"].items()}
        else:
            changes = {}
            for n in nodes:
                cur = clocks.settings.get(n, {"offset_s": 0.0, "rate": 1.0})
                changes[n] = {"offset_s": cur["offset_s"] + op["delta_s"], "rate": op["rate"]}
        return changes, clocks.bump(changes)

    def current(self) -> list[str]:
        out = []
        for n, s in sorted(self.clocks.settings.items()):
            rate = f"x{s['rate']:g}" if s["rate"] != 1.0 else ""
            out.append(f"clock:{n}{s['offset_s']:+g}s{rate}")
        return out + [f"strobe:{n}" for n in sorted(self.clocks.strobing)]

    def reapply(self, node: str) -> dict[str, Any] | None:
        return None  # the clock file is on the node's disk: a restart keeps it

    def after_restart(self, nodes: list[str], evidence: dict[str, Any]) -> dict[str, Any]:
        # A skew written while the node was down is checked now that it runs.
        settings, started = self.clocks.settings, evidence.get("nodes", {})
        return {"clocks": [self.clocks.verify_offset(n, settings[n]["offset_s"]) for n in nodes
                           if n in settings and n in started and started[n]["answers"]]}

    def heal(self) -> dict[str, Any]:
        return {"reset-clock": self.clocks.reset()} if self.clocks.skewed else {}


class ClockFamily(FamilyBase):
    """Skew, strobe or speed up a minority of the nodes' clocks."""

    name = "clock"
    ops = ("bump-clock", "strobe-clock", "reset-clock", "clock-rate")
    start_op, stop_op = "bump-clock", "reset-clock"
    starts = ("bump-clock", "strobe-clock")
    heal_rank = 60

    def refuses(self, f, target):
        if f == "strobe-clock" and target is not None and target.clock_control() not in (CLOCK_FILE, None):
            return (f"strobe-clock needs a target that reads a clock file; {target.name} has "
                    f"{target.clock_control()} clock control")
        return None

    def validate(self, op, node_ids):
        f, value = op["f"], op.get("value")
        if f == "clock-rate":  # shorthand: a rate change is a bump of zero with a rate
            value = {**(value if isinstance(value, dict) else {}), "delta_ms": 0}
            f = "bump-clock"
        if f == "reset-clock":
            return {"f": f, "nodes": node_list(value, node_ids, f, allow_empty=True) or None}
        if f == "strobe-clock":
            value = value or {}
            if not isinstance(value, dict):
                raise NemesisOpError(f"strobe-clock: needs {{'nodes', 'delta_ms', 'period_ms'}}, got {value!r}")
            nodes = node_list(value, node_ids, f, allow_empty=True) or list(node_ids)
            delta = number(value.get("delta_ms", 1000), f, "delta_ms") / 1000.0
            period = number(value.get("period_ms", 100), f, "period_ms") / 1000.0
            if period <= 0:
                raise NemesisOpError(f"strobe-clock: period_ms must be positive, got {period * 1000:g}")
            return {"f": f, "nodes": nodes, "delta_s": delta, "period_s": period}
        if isinstance(value, dict) and "nodes" in value:
            nodes = node_list(value, node_ids, f, allow_empty=False)
            delta = number(value.get("delta_ms", 0), f, "delta_ms") / 1000.0
            rate = number(value.get("rate", 1.0), f, "rate")
            if rate <= 0:
                raise NemesisOpError(f"bump-clock: rate must be positive, got {rate}")
            return {"f": f, "nodes": nodes, "delta_s": delta, "rate": rate, "absolute": None}
        if isinstance(value, dict) and value:
            absolute = {}
            for n, off in value.items():
                if n not in node_ids:
                    raise NemesisOpError(f"bump-clock: unknown node {n!r}")
                absolute[n] = number(off, f, f"offset of {n}")
            return {"f": f, "nodes": sorted(absolute), "delta_s": None, "rate": 1.0, "absolute": absolute}
        raise NemesisOpError(f"bump-clock: needs {{'nodes', 'delta_ms'}} or {{node: offset_s}}, got {value!r}")

    def injector(self, ctx):
        return _ClockFaults(ctx)

    def draw(self, rng, nodes, busy, target=None):
        targets = minority(rng, nodes)
        kind = rng.choice(("bump", "bump", "strobe", "rate"))
        if kind == "strobe" and self.refuses("strobe-clock", target):
            kind = "bump"  # not drawn for a target that cannot strobe
        if kind == "bump":
            delta = rng.choice((-1, 1)) * rng.choice((250, 1000, 5000, 60_000, 3_600_000))
            return Draw("bump-clock", {"nodes": targets, "delta_ms": delta})
        if kind == "strobe":
            return Draw("strobe-clock", {"nodes": targets, "delta_ms": rng.choice((200, 1000, 10_000)),
                                         "period_ms": rng.choice((10, 100, 500))})
        return Draw("bump-clock", {"nodes": targets, "delta_ms": 0, "rate": rng.choice((0.5, 2.0, 5.0))})

    def strategy(self, nodes):
        from hypothesis import strategies as st

        k = max(1, (len(nodes) - 1) // 2)
        return st.fixed_dictionaries({
            "nodes": st.lists(st.sampled_from(sorted(nodes)), min_size=1, max_size=k, unique=True).map(sorted),
            "delta_ms": st.sampled_from((1000, -1000, 5000, 60_000, -60_000, 3_600_000)),
        })

    def label(self, f, value):
        return f"{f} {value['delta_ms']}ms" if isinstance(value, dict) and "delta_ms" in value else f


CLOCK = ClockFamily()


# Slow enough to stretch the leader's timers 2.5 times, not so slow that its heartbeats (raftkv's 50 ms
# become 125 ms) reach the followers' shortest election timeout (150 ms) and depose it by themselves.
SLOW_LEADER_RATE = 0.4


class SlowLeaderClockFamily(ClockFamily):
    """The current leader's clock runs slow: every timer it keeps (CheckQuorum's above all) takes longer.

    A leader cut off from the others notices through CheckQuorum, within two election timeouts of its
    own clock; slowed, it goes on believing it leads well after the others elected a successor, which
    is the window a leader that serves reads without confirming its leadership (raftkv's
    read-index-no-confirm) is stale in. The same ops and injector as `clock` (only the draw differs);
    a spec names it `nemesis: [nemesis.clock:SLOW_LEADER]`, with `nemesis.partition:ISOLATE_LEADER`
    to cut that leader off.
    """

    # Said again: FamilyBase takes a subclass's start and stop from its ops unless it names them.
    start_op, stop_op = ClockFamily.start_op, ClockFamily.stop_op
    starts = ClockFamily.starts
    leader_ops = frozenset({"bump-clock"})

    def draw(self, rng, nodes, busy, target=None):
        return Draw("bump-clock", {"nodes": [LEADER], "delta_ms": 0, "rate": SLOW_LEADER_RATE})


SLOW_LEADER = SlowLeaderClockFamily()
