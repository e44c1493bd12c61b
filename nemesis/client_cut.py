"""Partitions of clients from their service: a cut-off client node loses every server, both ways.

An election run's nemesis acts on the candidates (the clients of a
coordination service), and a grudge among candidates alone would part
processes that never talk to each other. What an application suffers is a
holder cut off from the service while it can still reach the resource it
works on: its session or lease expires on the servers' side, another
candidate takes over, and the holder may go on acting. So here a grudge is
drawn over the candidates as usual, and the candidates it leaves cut off
(`grudges.cut_off`) are cut from every server of the service:

- on each cut-off candidate, the harness's chain drops packets from every server;
- on each server, the chain drops packets from every cut-off candidate.

Both sides matter: with rules on the candidate alone, a server would still
receive the candidate's pings (a ZooKeeper session stays alive on them).
The shared resource is served from the network's gateway, which no rule
names, so a cut-off holder can still do its work.

Verification: from every running candidate a connect to every server's
client port (blocked exactly for the cut-off ones), and from every server a
connect to every cut-off candidate's port (blocked). The same chain and
rule scripts as `nemesis.partition` (nemesis.chains).
"""

from __future__ import annotations

import time
from typing import Any

from nemesis import grudges as G
from nemesis.chains import install_drops, parallel, remove_chain
from nemesis.errors import NemesisError
from nemesis.netprobe import BLOCKED, REACHABLE, connect_probe


class ClientCut:
    """The Partitioner's interface (start, reapply, stop, verify, active) for candidates cut from a service.

    clients: the candidates' cluster (the nemesis's own); service: the servers'
    cluster; client_port / service_port: what the connect probes aim at."""

    def __init__(self, clients, service, client_port: int, service_port: int):
        self.clients = clients
        self.service = service
        self.client_port = client_port
        self.service_port = service_port
        self.cut: tuple[str, ...] = ()
        self.grudge_name: str | None = None

    @property
    def active(self) -> bool:
        return self.grudge_name is not None

    def _servers(self) -> list[str]:
        states = self.service.states()
        return [n for n in self.service.node_ids if states.get(n) in ("running", "paused")]

    def _client_rules(self) -> list[str]:
        return [f"-s {self.service.ips[s]} -j DROP" for s in self.service.node_ids]

    def start(self, name: str, grudge: G.Grudge, running: list[str]) -> dict[str, Any]:
        """Cut the candidates the grudge (over the candidates) leaves without a majority; evidence dict."""
        if self.active:
            self.stop(running)
        self.cut, self.grudge_name = G.cut_off(grudge), name
        server_rules = [f"-s {self.clients.ips[c]} -j DROP" for c in self.cut]
        parallel(lambda c: install_drops(self.clients, c, self._client_rules()), [c for c in self.cut if c in running])
        if self.cut:
            parallel(lambda s: install_drops(self.service, s, server_rules), self._servers())
        return {"cut_from_service": list(self.cut), "servers": self._servers(),
                **self.verify(running, expect_grudge=True)}

    def reapply(self, node: str) -> dict[str, Any] | None:
        """A restarted candidate lost its namespace: cut it again (the servers kept their rules)."""
        if node not in self.cut:
            return None
        install_drops(self.clients, node, self._client_rules())
        return {"reapplied": node, "drops": sorted(self.service.node_ids)}

    def stop(self, running: list[str]) -> dict[str, Any]:
        had = self.cut
        self.cut, self.grudge_name = (), None

        parallel(lambda c: remove_chain(self.clients, c), running)
        parallel(lambda s: remove_chain(self.service, s), self._servers())
        return {"healed_cut": list(had), **self.verify(running, expect_grudge=False, previous=had)}

    def verify(self, running: list[str], expect_grudge: bool, previous: tuple[str, ...] = (),
               attempts: int = 3) -> dict[str, Any]:
        """Every running candidate against every server, both ways for the cut-off; NemesisError on a mismatch."""
        cut = set(self.cut) if expect_grudge else set()
        for attempt in range(attempts):
            seen = self._probe(running, watched=sorted(set(self.cut) | set(previous)))
            mismatches = [f"{a}->{b} {outcome} (should {'be blocked' if a in cut or b in cut else 'connect'})"
                          for a, b, outcome in seen if outcome not in (BLOCKED if a in cut or b in cut else REACHABLE)]
            if not mismatches:
                return {"verified": True, "blocked_pairs": sum(1 for _, _, o in seen if o in BLOCKED),
                        "connected_pairs": sum(1 for _, _, o in seen if o in REACHABLE), "attempts": attempt + 1}
            time.sleep(0.3)
        what = "partition" if expect_grudge else "partition heal"
        raise NemesisError(f"{what} did not take effect: " + "; ".join(mismatches[:6]))

    def _probe(self, running: list[str], watched: list[str]) -> list[tuple[str, str, str]]:
        """(from, to, outcome): every running candidate to every server, every server to the watched candidates."""
        servers = self._servers()
        server_ips = {self.service.ips[s]: s for s in servers}
        states = self.clients.states()
        # Probing from a paused node takes a helper container; a cut one is checked from the servers' side.
        sources = [c for c in running if states.get(c) != "paused"]
        seen = []
        out = parallel(lambda c: connect_probe(self.clients, c, list(server_ips), self.service_port), sources)
        for c, res in zip(sources, out, strict=True):
            seen += [(c, server_ips[ip], outcome) for ip, outcome in res.items()]
        by_ip = {self.clients.ips[c]: c for c in watched if c in running}
        if by_ip:
            out = parallel(lambda s: connect_probe(self.service, s, list(by_ip), self.client_port), servers)
            for s, res in zip(servers, out, strict=True):
                seen += [(s, by_ip[ip], outcome) for ip, outcome in res.items()]
        return seen
