"""Packet loss with the iptables statistic match: the loss fault family.

Loss: each chosen node drops a random fraction of the packets it receives
from the other nodes (`-m statistic --mode random --probability p -j DROP`
in the chain SPLITBRAIN-LOSS). Client and observer traffic from the harness
is not dropped, so the observer keeps seeing what every node believes.
Verified by reading the rules back (the kernel accepted the statistic match
with that probability); at heal the per-rule drop counters go into the
evidence, then the chain is removed and checked gone.
"""

from __future__ import annotations

import re
from typing import Any

from nemesis import partition
from nemesis.chains import chain_script, parallel, remove_chain_script
from nemesis.errors import NemesisError, NemesisOpError
from nemesis.family import Draw, FamilyBase, FaultContext, Sweep, netns_problem, node_list, number

CHAIN = "SPLITBRAIN-LOSS"


class Loss:
    def __init__(self, cluster):
        self.cluster = cluster
        self.nodes: list[str] = []
        self.probability: float | None = None

    def _rules(self, node: str, p: float) -> list[str]:
        return [f"-s {ip} -m statistic --mode random --probability {p} -j DROP"
                for n, ip in sorted(self.cluster.ips.items()) if n != node]

    def start(self, nodes: list[str], probability: float, running: list[str]) -> dict[str, Any]:
        if self.nodes:
            self.stop(running)
        self.nodes, self.probability = list(nodes), probability

        def install(node: str) -> int:
            rules = self._rules(node, probability)
            rc, out = self.cluster.exec_netns(node, ["sh", "-c", chain_script(CHAIN, rules)])
            if rc != 0:
                raise NemesisError(f"loss: installing rules on {node} failed (exit {rc}): {out.strip()[-300:]}")
            seen = [float(m) for m in re.findall(r"--probability ([0-9.]+)", out)]
            if len(seen) != len(rules) or any(abs(s - probability) > 1e-6 for s in seen):
                raise NemesisError(f"loss: {node} shows {len(seen)} statistic rules {seen} after installing "
                                   f"{len(rules)} with p={probability}")
            return len(seen)

        targets = [n for n in nodes if n in running]
        counts = parallel(install, targets)
        return {"verified": True, "probability": probability, "rules": dict(zip(targets, counts, strict=True)),
                "unverified_nodes": sorted(set(nodes) - set(running))}

    def reapply(self, node: str) -> dict[str, Any] | None:
        if node not in self.nodes or self.probability is None:
            return None
        rc, out = self.cluster.exec_netns(node, ["sh", "-c", chain_script(CHAIN, self._rules(node, self.probability))])
        if rc != 0:
            raise NemesisError(f"loss: reinstalling rules on {node} failed: {out.strip()[-300:]}")
        return {"reapplied": node, "probability": self.probability}

    def stop(self, running: list[str]) -> dict[str, Any]:
        nodes = [n for n in self.nodes if n in running]
        self.nodes, self.probability = [], None

        def remove(node: str) -> int:
            # Read the drop counters before the chain goes: evidence that packets were lost.
            rc, out = self.cluster.exec_netns(
                node, ["sh", "-c", f"iptables -w -L {CHAIN} -n -v -x 2>/dev/null; echo ---; {remove_chain_script(CHAIN)}"])
            stats, _, left = out.partition("---")
            dropped = sum(int(line.split()[0]) for line in stats.splitlines()
                          if line.strip() and line.split()[0].isdigit())
            if left.strip() and int(left.strip().splitlines()[-1]) != 0:
                raise NemesisError(f"loss heal: {node} still has {CHAIN} rules")
            return dropped

        dropped = parallel(remove, nodes)
        return {"verified": True, "dropped_packets": dict(zip(nodes, dropped, strict=True))}

    @property
    def active(self) -> bool:
        return bool(self.nodes)


class _Losses:
    def __init__(self, ctx: FaultContext):
        self.ctx = ctx
        self.loss = ctx.shared(Loss)
        ctx.lossy = lambda: self.loss.nodes

    def invoke(self, op: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if op["f"] == "stop-loss":
            if not self.loss.active:
                return None, {"note": "no loss was active"}
            return None, self.loss.stop(self.ctx.alive())
        nodes, _ = self.ctx.resolve(op["nodes"], list(self.ctx.cluster.node_ids))
        return ({"nodes": nodes, "probability": op["probability"]},
                self.loss.start(nodes, op["probability"], self.ctx.alive()))

    def current(self) -> list[str]:
        return [f"loss:{self.loss.probability:g}"] if self.loss.active else []

    def reapply(self, node: str) -> dict[str, Any] | None:
        return self.loss.reapply(node)

    def after_restart(self, nodes: list[str], evidence: dict[str, Any]) -> dict[str, Any]:
        return {}

    def heal(self) -> dict[str, Any]:
        # Before the partition's heal (a lower rank), so that verifies on a loss-free network.
        return {"stop-loss": self.loss.stop(self.ctx.alive())} if self.loss.active else {}


class LossFamily(FamilyBase):
    """Random packet loss between nodes."""

    name = "loss"
    ops = ("start-loss", "stop-loss")
    heal_rank = 40
    sweep = Sweep(remove_chain_script(CHAIN), fatal=True)

    def problems(self, cluster, target) -> list[str]:
        why = netns_problem(cluster) or partition.iptables_problem()
        return [f"loss: {why}"] if why else []

    def validate(self, op, node_ids):
        f, value = op["f"], op.get("value")
        if f == "stop-loss":
            return {"f": f}
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            nodes, p = list(node_ids), float(value)
        elif isinstance(value, dict):
            nodes = node_list(value, node_ids, f, allow_empty=True) or list(node_ids)
            p = number(value.get("probability"), f, "probability")
        else:
            raise NemesisOpError(f"start-loss: needs a probability, got {value!r}")
        if not 0 < p <= 1:
            raise NemesisOpError(f"start-loss: probability must be in (0, 1], got {p}")
        return {"f": f, "nodes": nodes, "probability": p}

    def injector(self, ctx):
        return _Losses(ctx)

    def draw(self, rng, nodes, busy, target=None):
        k = rng.randint(1, len(nodes))
        return Draw("start-loss", {"nodes": sorted(rng.sample(nodes, k)), "probability": rng.choice((0.1, 0.3, 0.5))})

    def strategy(self, nodes):
        from hypothesis import strategies as st

        return st.fixed_dictionaries({
            "nodes": st.lists(st.sampled_from(sorted(nodes)), min_size=1, max_size=len(nodes), unique=True).map(sorted),
            "probability": st.sampled_from((0.5, 0.3, 0.1)),
        })


LOSS = LossFamily()
