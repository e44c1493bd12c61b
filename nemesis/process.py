"""Process faults: crash (SIGKILL, later restart with the disk intact) and pause (freeze, later thaw).

Verified both ways: a killed node's container has exited (its process is
gone) and it does not answer; a restarted node runs and answers its status
probe again; a paused node's container is frozen and does not answer; a
resumed one answers again.
"""

from __future__ import annotations

import time
from typing import Any

from nemesis.errors import NemesisError

RESTART_WAIT_S = 15.0


class Processes:
    def __init__(self, cluster):
        self.cluster = cluster
        self.killed: set[str] = set()
        self.paused: set[str] = set()

    def kill(self, nodes: list[str]) -> dict[str, Any]:
        evidence = {}
        for node in nodes:
            if self.cluster.state(node) == "paused":
                self.cluster.resume(node)  # SIGKILL is not delivered to a frozen process until it thaws
                self.paused.discard(node)
            self.cluster.kill(node)
            self.killed.add(node)
            state = self.cluster.state(node)
            if state == "running":
                raise NemesisError(f"kill {node}: its container is still running after SIGKILL")
            answers = self.cluster.probe(node, timeout=0.3) is not None
            if answers:
                raise NemesisError(f"kill {node}: the node still answers its status probe")
            evidence[node] = {"state": state, "exit_code": self._exit_code(node), "answers": False}
        return {"verified": True, "nodes": evidence}

    def _exit_code(self, node: str) -> int | None:
        c = self.cluster.container(node)
        c.reload()
        return c.attrs.get("State", {}).get("ExitCode")

    def start(self, nodes: list[str]) -> dict[str, Any]:
        for node in nodes:
            self.cluster.start(node)
            self.killed.discard(node)
        evidence = {}
        for node in nodes:
            if self.cluster.state(node) not in ("running",):
                raise NemesisError(f"start {node}: container is {self.cluster.state(node)} after docker start")
        t0 = time.monotonic()
        silent = self.cluster.wait_serving(nodes, RESTART_WAIT_S)
        for node in nodes:
            # A node that runs but never answers is the target's problem, not the harness's: record it.
            evidence[node] = {"state": self.cluster.state(node), "answers": node not in silent,
                              "answered_after_s": None if node in silent else round(time.monotonic() - t0, 2)}
        return {"verified": not silent, "nodes": evidence}

    def pause(self, nodes: list[str]) -> dict[str, Any]:
        evidence = {}
        for node in nodes:
            self.cluster.pause(node)
            self.paused.add(node)
        for node in nodes:
            state = self.cluster.state(node)
            if state != "paused":
                raise NemesisError(f"pause {node}: container is {state}, not paused")
            if self.cluster.probe(node, timeout=0.3) is not None:
                raise NemesisError(f"pause {node}: the node still answers its status probe")
            evidence[node] = {"state": state, "answers": False}
        return {"verified": True, "nodes": evidence}

    def resume(self, nodes: list[str]) -> dict[str, Any]:
        for node in nodes:
            self.cluster.resume(node)
            self.paused.discard(node)
        silent = self.cluster.wait_serving(nodes, 5.0)
        evidence = {n: {"state": self.cluster.state(n), "answers": n not in silent} for n in nodes}
        for n in nodes:
            if evidence[n]["state"] != "running":
                raise NemesisError(f"resume {n}: container is {evidence[n]['state']} after unpause")
        return {"verified": not silent, "nodes": evidence}
