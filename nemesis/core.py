"""The nemesis: one entry point, `invoke(op) -> completion`, composed of the registered fault families.

An op is {"f": NAME, "value": ...}; the family that owns NAME (nemesis.registry)
validates it into its normal form and performs it on the cluster, verified.
Each family's module documents its ops: partition (start-/stop-partition),
process (kill/start, pause/resume), clock (bump-, strobe-, reset-clock,
clock-rate), loss (start-/stop-loss), netem (start-/stop-delay, -duplicate,
-reorder), vote_crash (start-/stop-vote-crash), first_write_crash
(start-/stop-first-write-crash).

The completion is {"type": "info", "f", "value": what was actually done (nodes
and grudge resolved), "evidence": what the verification saw, "fault": the
facts the split-brain checker reads (nodes hit, and which of them lost their
leadership)}. A fault that did not take effect raises NemesisError: the run
stops as an infrastructure error rather than reporting a test that never happened.
"""

from __future__ import annotations

import random
import threading
from typing import Any

from nemesis.chains import parallel
from nemesis.errors import NemesisError, NemesisOpError
from nemesis.family import FaultContext, netns_problem, unmet_requirements
from nemesis.process import Processes
from nemesis.registry import families, family, family_of, fault_facts, op_families
from plugins.registry import PluginError

OPS = tuple(op_families())


def validate_op(op: dict[str, Any], node_ids: list[str], table: dict | None = None) -> dict[str, Any]:
    """The op in one normal form {"f", ...fields}; NemesisOpError when it is malformed. Pure.
    `table`: op -> family (default: every registered family's ops)."""
    if not isinstance(op, dict) or "f" not in op:
        raise NemesisOpError(f"a nemesis op needs an 'f': {op!r}")
    return family_of(op["f"], table).validate(op, node_ids)


class Nemesis:
    """Faults against one cluster (a `ClusterControl`), one injector per registered family."""

    def __init__(self, cluster, target, faults: list[str] | tuple[str, ...], rng: random.Random | None = None):
        self.cluster = cluster
        self.target = target
        self.faults = list(faults)
        self.rng = rng or random.Random(0)
        self.ctx = FaultContext(cluster, target, self.rng, restart=self._start)
        self.families = families()
        self.injectors = {name: fam.injector(self.ctx) for name, fam in self.families.items()}
        self._ops = op_families(self.families)
        self._lock = threading.RLock()

    # ---- before the run ---------------------------------------------------

    def problems(self) -> list[str]:
        """One line per requested fault family that this host or target cannot inject."""
        out = list(self.target.unsupported_faults(self.faults))
        for f in self.faults:
            try:
                fam = family(f)
                # What the target lacks first: the family's own checks may call what it lacks.
                out += unmet_requirements(fam, self.target) or fam.problems(self.cluster, self.target)
            except PluginError:
                out.append(f"{f}: no such fault family")
        return out

    # ---- during the run ---------------------------------------------------

    @property
    def current_faults(self) -> list[str]:
        return [c for inj in self.injectors.values() for c in inj.current()]

    def leader(self) -> str | None:
        return self.ctx.leader()

    def invoke(self, op: dict[str, Any]) -> dict[str, Any]:
        """Perform one fault operation, verify it, and return its completion (see module docstring)."""
        norm = validate_op(op, self.cluster.node_ids, self._ops)
        f = norm["f"]
        with self._lock:
            try:
                value, evidence = self.injectors[self._ops[f].name].invoke(norm)
            except NemesisError:
                raise
            except Exception as e:
                raise NemesisError(f"{f}: {type(e).__name__}: {e}") from e
        return {"type": "info", "f": f, "value": value, "evidence": evidence,
                "fault": fault_facts(f, value, self._ops)}

    def _start(self, nodes: list[str]) -> dict[str, Any]:
        """Restart nodes and give them back the faults their network namespace lost; verified."""
        ev = self.ctx.shared(Processes).start(nodes)
        ev["reapplied"] = [r for n in nodes for inj in self.injectors.values() for r in [inj.reapply(n)] if r]
        for inj in self.injectors.values():
            ev.update(inj.after_restart(nodes, ev))
        return ev

    # ---- the end ----------------------------------------------------------

    def heal_all(self) -> dict[str, Any]:
        """Undo every fault, family by family in heal order (thaw, restart, ..., rules, clocks); each verified."""
        with self._lock:
            done: dict[str, Any] = {}
            for name in sorted(self.injectors, key=lambda n: self.families[n].heal_rank):
                done.update(self.injectors[name].heal())
            done["final-check"] = self._final_check()
            return {"type": "info", "f": "heal", "value": sorted(k for k in done if k != "final-check"),
                    "evidence": done}

    def _final_check(self) -> dict[str, Any]:
        """After a heal: every node runs and answers, and nothing a family leaves is left anywhere (removed if found)."""
        states = self.cluster.states()
        not_running = {n: st for n, st in states.items() if st != "running"}
        if not_running:
            raise NemesisError(f"heal: nodes not running afterwards: {not_running}")
        sweeps = list(dict.fromkeys(fam.sweep for fam in self.families.values() if fam.sweep is not None))
        if netns_problem(self.cluster):
            sweeps = []  # no namespace to look in, and no network family could run (refused before the run)
        script = "; ".join(s.script for s in sweeps)

        def leftovers(node: str) -> list[int]:
            rc, out = self.cluster.exec_netns(node, ["sh", "-c", script])
            return [int(x) for x in out.split() if x.isdigit()]

        counts = dict(zip(self.cluster.node_ids, parallel(leftovers, self.cluster.node_ids), strict=True)) \
            if sweeps else {}
        dirty = {n: c for n, c in counts.items() if any(c)}
        fatal = [i for i, s in enumerate(sweeps) if s.fatal]
        if any(c[i] for c in dirty.values() for i in fatal if i < len(c)):
            raise NemesisError(f"heal: harness iptables rules survive on {sorted(dirty)}")
        silent = self.cluster.wait_serving(self.cluster.node_ids, 10.0)
        return {"all_running": True, "no_rules_left": True, "netem_left": sorted(dirty), "silent_nodes": silent}
