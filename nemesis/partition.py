"""Partitions: a grudge becomes iptables DROP rules in the harness's own chain inside each node.

Each node gets a chain SPLITBRAIN, jumped to from the top of INPUT, holding
one `-s <peer ip> -j DROP` per peer it must not hear. Nothing else in the
node's ruleset is touched: healing flushes and deletes that chain and its
jump, and checks that no SPLITBRAIN rule is left. The rules live in the
container's network namespace, which a killed container loses, so a node that
restarts during a partition gets its rules again (`reapply`).

Verification: from every running node, a TCP connect to every other node's
peer port; a pair in the grudge (either direction) must time out, a pair
outside it must connect or be refused.
"""

from __future__ import annotations

import functools
import os
import random
import shutil
import subprocess
import time
from typing import Any

from nemesis import grudges as G
from nemesis.chains import CHAIN, install_drops, parallel, remove_chain, remove_chain_script
from nemesis.client_cut import ClientCut
from nemesis.errors import NemesisError, NemesisOpError
from nemesis.family import Draw, FamilyBase, FaultContext, Sweep, netns_problem
from nemesis.netprobe import BLOCKED, REACHABLE, connect_probe


class Partitioner:
    def __init__(self, cluster, peer_port: int, lossy=lambda: ()):
        self.cluster = cluster
        self.peer_port = peer_port
        # Nodes under random packet loss right now: a connect there may time out by chance.
        self.lossy = lossy
        self.grudge: G.Grudge | None = None
        self.grudge_name: str | None = None

    def _rules_for(self, node: str) -> list[str]:
        assert self.grudge is not None
        return [f"-s {self.cluster.ips[src]} -j DROP" for src in sorted(self.grudge.get(node, ()))]

    def _install(self, node: str) -> str:
        return install_drops(self.cluster, node, self._rules_for(node))

    def start(self, name: str, grudge: G.Grudge, running: list[str]) -> dict[str, Any]:
        """Install the grudge on every running node and verify it; evidence dict."""
        if self.grudge is not None:
            self.stop(running)
        self.grudge, self.grudge_name = grudge, name
        parallel(self._install, [n for n in running if grudge.get(n)])
        evidence = self.verify(running, expect_grudge=True)
        return {"grudge": G.describe(grudge), "rules": {n: len(grudge.get(n, ())) for n in running}, **evidence}

    def reapply(self, node: str) -> dict[str, Any] | None:
        """A restarted node lost its namespace: install its part of the current grudge again."""
        if not self.grudge or not self.grudge.get(node):
            return None
        self._install(node)
        return {"reapplied": node, "drops": sorted(self.grudge[node])}

    def stop(self, running: list[str]) -> dict[str, Any]:
        """Remove the harness's chain from every running node and verify everyone connects again."""
        had = self.grudge
        self.grudge, self.grudge_name = None, None

        parallel(lambda n: remove_chain(self.cluster, n), running)
        evidence = self.verify(running, expect_grudge=False, previous=had)
        return {"healed": G.describe(had) if had else {}, **evidence}

    def verify(self, running: list[str], expect_grudge: bool, previous: G.Grudge | None = None,
               attempts: int = 3) -> dict[str, Any]:
        """Probe every ordered pair of running nodes; NemesisError when any pair disagrees with the grudge."""
        grudge = self.grudge if expect_grudge else None
        ips = self.cluster.ips
        by_ip = {ip: n for n, ip in ips.items()}

        def expected_blocked(a: str, b: str) -> bool:
            return bool(grudge) and (b in grudge.get(a, ()) or a in grudge.get(b, ()))

        mismatches: list[str] = []
        lossy = set(self.lossy())
        states = self.cluster.states()
        paused = {n for n in running if states.get(n) == "paused"}
        for attempt in range(attempts):
            # Probe from running nodes only: a paused node's kernel still answers a
            # connect, so its pairs are covered from the other end, without a helper.
            sources = [n for n in running if n not in paused] or running
            results = dict(zip(sources, parallel(
                lambda src: connect_probe(self.cluster, src, [ips[d] for d in running if d != src], self.peer_port),
                sources), strict=True))
            mismatches = []
            blocked_seen = reachable_seen = lost_seen = 0
            for src, res in results.items():
                for ip, outcome in res.items():
                    dst = by_ip[ip]
                    if expected_blocked(src, dst):
                        if outcome in BLOCKED:
                            blocked_seen += 1
                        else:
                            mismatches.append(f"{src}->{dst} {outcome} (should be blocked)")
                    else:
                        if outcome in REACHABLE:
                            reachable_seen += 1
                        elif outcome in BLOCKED and (src in lossy or dst in lossy):
                            lost_seen += 1  # random loss, not our grudge: cannot tell, do not fail
                        else:
                            mismatches.append(f"{src}->{dst} {outcome} (should connect)")
            if not mismatches:
                return {"verified": True, "blocked_pairs": blocked_seen, "connected_pairs": reachable_seen,
                        "timeouts_under_loss": lost_seen,
                        "attempts": attempt + 1,
                        "unverified_nodes": sorted(set(ips) - set(running))}
            # A heal can take a moment to reach established flows; a grudge never should.
            time.sleep(0.3)
        what = "partition" if expect_grudge else "partition heal"
        raise NemesisError(f"{what} did not take effect: " + "; ".join(mismatches[:6]))

    @property
    def active(self) -> bool:
        return self.grudge is not None


@functools.cache
def iptables_problem() -> str | None:
    """None when this kernel takes the rules partitions and loss use (probed in a scratch namespace)."""
    ipt, unshare = shutil.which("iptables"), shutil.which("unshare")
    if os.geteuid() != 0 or not ipt or not unshare:
        return None  # cannot probe from here; the nemesis verifies every rule it installs anyway
    script = ("iptables -w -N SPLITBRAIN-PROBE && iptables -w -A SPLITBRAIN-PROBE -s 10.0.0.1 "
              "-m statistic --mode random --probability 0.5 -j DROP")
    res = subprocess.run([unshare, "--net", "sh", "-c", script], capture_output=True, text=True, timeout=10)
    if res.returncode == 0:
        return None
    detail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["unknown error"]
    return f"iptables with the statistic match does not work on this kernel ({detail[0]})"


class _Partitions:
    def __init__(self, ctx: FaultContext):
        self.ctx = ctx
        self._p: Partitioner | None = None

    @property
    def p(self):
        # Chosen at first use: a client target learns its service's cluster only once that is up.
        if self._p is None:
            service = getattr(self.ctx.target, "service", None)
            if service is not None:
                self._p = ClientCut(self.ctx.cluster, service, self.ctx.target.peer_port, service.target.client_port)
            else:
                self._p = Partitioner(self.ctx.cluster, self.ctx.target.peer_port, lossy=lambda: self.ctx.lossy())
        return self._p

    def invoke(self, op: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if op["f"] == "stop-partition":
            if not self.p.active:
                return None, {"note": "no partition was active"}
            return None, self.p.stop(self.ctx.alive())
        rng = random.Random(op["seed"]) if op["seed"] is not None else self.ctx.rng
        name = op["grudge"]
        voters = None
        if name == "split-voters":
            leader, voters = self._leader_and_voters()
        else:
            leader = self.ctx.leader() if name == "isolate-leader" else None
        if name == "isolate-leader" and leader is None:
            name = "isolate-one"  # no leader to isolate: isolate someone, and say so
        grudge = G.compute(name, self.ctx.cluster.node_ids, rng, leader=leader, voters=voters)
        ev = self.p.start(name, grudge, self.ctx.alive())
        if name != op["grudge"]:
            ev["note"] = "no node claimed leadership; isolated a random node instead"
        value = {"grudge": name, "drops": G.describe(grudge), "leader": leader}
        if voters is not None:
            value["voters"] = voters
        return value, ev

    def _leader_and_voters(self) -> tuple[str | None, list[str] | None]:
        """The leader in the highest term, and the voters its status probe names (None if it names none)."""
        statuses = self.ctx.cluster.probe_all(timeout=0.5)
        leaders = [(s.get("term") or 0, n) for n, s in statuses.items() if s and s.get("role") == "leader"]
        if not leaders:
            return None, None
        leader = max(leaders)[1]
        voters = statuses[leader].get("voters")
        return leader, [str(v) for v in voters] if isinstance(voters, list) else None

    def current(self) -> list[str]:
        return [f"partition:{self.p.grudge_name}"] if self.p.active else []

    def reapply(self, node: str) -> dict[str, Any] | None:
        return self.p.reapply(node)

    def after_restart(self, nodes: list[str], evidence: dict[str, Any]) -> dict[str, Any]:
        return {"partition": self.p.verify(self.ctx.alive(), expect_grudge=True)} if self.p.active else {}

    def heal(self) -> dict[str, Any]:
        return {"stop-partition": self.p.stop(self.ctx.alive())} if self.p.active else {}


class PartitionFamily(FamilyBase):
    """Who cannot hear whom: a grudge (nemesis.grudges) as DROP rules."""

    name = "partition"
    ops = ("start-partition", "stop-partition")
    leader_ops = frozenset({"start-partition"})
    heal_rank = 50
    sweep = Sweep(remove_chain_script(CHAIN), fatal=True)

    def problems(self, cluster, target) -> list[str]:
        why = netns_problem(cluster) or iptables_problem()
        if why:
            return [f"partition: {why}"]
        return ["partition needs at least 2 nodes"] if len(cluster.node_ids) < 2 else []

    def validate(self, op, node_ids):
        f, value = op["f"], op.get("value")
        if f == "stop-partition":
            return {"f": f}
        grudge = value.get("grudge") if isinstance(value, dict) else value
        if grudge not in G.GRUDGES + G.AIMED_GRUDGES:
            raise NemesisOpError(f"start-partition: unknown grudge {grudge!r}; "
                                 f"known: {', '.join(G.GRUDGES + G.AIMED_GRUDGES)}")
        seed = value.get("seed") if isinstance(value, dict) else None
        return {"f": f, "grudge": grudge, "seed": seed}

    def injector(self, ctx):
        return _Partitions(ctx)

    def _grudges(self, nodes: list[str]) -> tuple[str, ...]:
        return G.GRUDGES if len(nodes) >= 3 else ("halves", "one-way")

    def draw(self, rng, nodes, busy, target=None):
        # A target may narrow the grudges that mean something for its nodes (targets.candidates).
        allowed = getattr(target, "partition_grudges", None)
        grudge = rng.choice([g for g in self._grudges(nodes) if allowed is None or g in allowed]
                            or self._grudges(nodes))
        return Draw("start-partition", {"grudge": grudge, "seed": rng.randrange(2**31)})

    def strategy(self, nodes):
        from hypothesis import strategies as st

        return st.fixed_dictionaries({"grudge": st.sampled_from(self._grudges(nodes)), "seed": st.integers(0, 2**16)})

    def _drops(self, value: Any) -> dict | None:
        drops = value.get("drops") or value.get("grudge") if isinstance(value, dict) else None
        return drops if isinstance(drops, dict) else None

    def cut_off(self, value):
        drops = value.get("drops") if isinstance(value, dict) else None
        return list(G.cut_off(drops)) if isinstance(drops, dict) else None

    def nodes_hit(self, f, value):
        drops = self._drops(value)
        if drops is None:
            return super().nodes_hit(f, value)
        return list(G.cut_off(drops)) or sorted(str(n) for n, cut in drops.items() if cut)

    def label(self, f, value):
        return f"partition {value['grudge']}" if isinstance(value, dict) and isinstance(value.get("grudge"), str) else f

    def describe(self, op):
        value = op.get("value")
        if isinstance(value, dict) and isinstance(value.get("grudge"), str):
            return f"{op['f']}({value['grudge']})"
        return super().describe(op)


PARTITION = PartitionFamily()


class IsolateLeaderFamily(PartitionFamily):
    """Partitions that always cut the current leader off from everyone else (grudge isolate-leader).

    The random grudges of `partition` isolate the leader in a fraction of the
    draws only; a failover manager's question (does the cut-off primary keep
    acknowledging writes while a replica is promoted?) needs every partition
    to be that one. The same ops and injector as `partition` (only the draw
    differs); a spec names it `nemesis: [nemesis.partition:ISOLATE_LEADER]`.
    """

    def _grudges(self, nodes: list[str]) -> tuple[str, ...]:
        return ("isolate-leader",)


ISOLATE_LEADER = IsolateLeaderFamily()


class SplitVotersFamily(PartitionFamily):
    """Partitions that always split the voters the leader's status names (grudge split-voters): the leader,
    the smaller half of the voters and every node outside the configuration against the other voters.

    Mixed with the membership family, every partition cuts a majority of the configuration before a
    change from a majority of the one after it (nemesis.grudges.split_voters), the moment a store that
    miscounts a change (raftkv's count-removed, stale-majority) elects a second leader. The same ops and
    injector as `partition`; a spec names it `nemesis: [nemesis.partition:SPLIT_VOTERS]`.
    """

    def _grudges(self, nodes: list[str]) -> tuple[str, ...]:
        return ("split-voters",)


SPLIT_VOTERS = SplitVotersFamily()
