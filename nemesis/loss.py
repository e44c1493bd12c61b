"""Packet loss with the iptables statistic match, and the netem faults this kernel may not have.

Loss: each chosen node drops a random fraction of the packets it receives
from the other nodes (`-m statistic --mode random --probability p -j DROP`
in the chain SPLITBRAIN-LOSS). Client and observer traffic from the harness
is not dropped, so the observer keeps seeing what every node believes.
Verified by reading the rules back (the kernel accepted the statistic match
with that probability); at heal the per-rule drop counters go into the
evidence, then the chain is removed and checked gone.

Delay, duplication and reordering need the netem qdisc. `netem_problem()`
tries to add one in a scratch network namespace and says so when the kernel
refuses, so such faults are refused before a run instead of pretending.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from typing import Any

from nemesis.errors import NemesisError
from nemesis.partition import chain_script, parallel, remove_chain_script

CHAIN = "SPLITBRAIN-LOSS"
NETEM_FAULTS = ("delay", "duplicate", "reorder")


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
