"""The Patroni target plugin: Debian's PostgreSQL 15 managed by Patroni 3.0.2, an etcd 3.4 member per node as its DCS.

The configuration and the etcd member are targets.patroni.config's, the
client and its outcome rules targets.patroni.client's, the reading of the
REST API's answers targets.patroni.probe's, the options
targets.patroni.settings'; the whole story is in targets/patroni/README.md.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from targets.base import ClusterLayout, TargetOptions
from targets.image import ImageRecipe
from targets.options import refusals
from targets.patroni import config, probe
from targets.patroni.client import PatroniClient
from targets.patroni.settings import PatroniSettings

HERE = Path(__file__).resolve().parent
ETCD_NODE_SCRIPT = HERE.parent / "etcd" / "node.sh"  # the etcd target's, started by ours
NODE_SCRIPT = "/opt/splitbrain/patroni/node.sh"  # where image_recipe puts node.sh
# Tried and seen, not guessed (targets/patroni/README.md; tests/test_patroni_docker.py checks the
# first reason): under Debian's libfaketime 0.9.10 with the monotonic clock left alone, as a wall-clock
# skew needs, Python's time.sleep raises EINVAL, and every Patroni of a 3-node cluster died within a
# minute; faking the monotonic clock too would move Patroni's timeouts, which no real clock fault does.
CLOCK_REFUSAL = ("clock: what decides a Patroni failover is the leader key's lease, which etcd (a Go program, out "
                 "of libfaketime's reach) expires; and Patroni (Python 3.11) under libfaketime 0.9.10 with the "
                 "monotonic clock left alone dies in its own sleeps (time.sleep raises EINVAL)")


def rest_http(timeout: float) -> httpx.AsyncClient:
    """HTTP to Patroni's REST API; trust_env=False: no proxy from the environment between us and the nodes.

    verify=False: plain HTTP only, and it spares loading the CA bundle (about 36 ms of CPU) per client:
    with it, the observer's 60 probes a second of a 3-node run took two cores' worth of the harness,
    and every node's probe timed out at once for seconds while the nodes served."""
    return httpx.AsyncClient(timeout=timeout, trust_env=False, verify=False)


class Patroni:
    """PostgreSQL 15 + Patroni 3.0.2 + etcd 3.4.23 from Debian bookworm, one of each per node."""

    name = "patroni"
    # The etcd member's peer port: open on every node from its start (PostgreSQL's port opens
    # only once a replica has been copied), so a partition is verified on it. The iptables rules
    # drop every packet between the nodes, PostgreSQL's replication too.
    peer_port = config.ETCD_PEER_PORT
    client_port = config.POSTGRES_PORT

    def __init__(self) -> None:
        self.settings = PatroniSettings()

    def image_recipe(self) -> ImageRecipe:
        return ImageRecipe(
            name=self.name,
            files=(("patroni/node.sh", HERE / "node.sh"),
                   ("patroni/post_bootstrap.sh", HERE / "post_bootstrap.sh"),
                   ("etcd/node.sh", ETCD_NODE_SCRIPT)),
            # python3-etcd: Patroni's etcd3 DCS is built on its client. etcd-client: etcdctl, and
            # patronictl comes with patroni, for looking around inside a node.
            packages=("patroni", "python3-etcd", "postgresql-15", "etcd-server", "etcd-client"),
        )

    def unsupported_options(self, settings: dict[str, Any]) -> list[str]:
        return refusals(PatroniSettings.parse, settings)

    def node_command(self, node_id: str, cluster: ClusterLayout, options: TargetOptions) -> list[str]:
        self.settings = PatroniSettings.parse(options.settings)
        return ["sh", NODE_SCRIPT, cluster.data_dir, config.config_path(cluster),
                config.config_text(node_id, cluster, self.settings), *config.etcd_command(node_id, cluster)]

    def node_environment(self, node_id: str, cluster: ClusterLayout, options: TargetOptions) -> dict[str, str]:
        return {}

    def clock_control(self) -> str | None:
        return None  # see unsupported_faults

    def client(self, addresses: dict[str, str], timeout: float = 1.0) -> PatroniClient:
        return PatroniClient(addresses, timeout)

    async def status_probe(self, address: str, timeout: float = 0.5) -> dict[str, Any] | None:
        ip = address.rpartition(":")[0]
        base = f"http://{ip}:{config.REST_PORT}"
        async with rest_http(timeout) as http:
            async def get(path: str):
                try:
                    resp = await http.get(base + path)
                    return resp.json(), resp.headers.get("date")
                except (httpx.HTTPError, ValueError):
                    return None, None

            (node, date), (cluster, _) = await asyncio.gather(get("/patroni"), get("/cluster"))
        view = probe.status_view(node, cluster, ip)
        if view is not None:
            view["wall_time"] = probe.wall_time(date)
        return view

    def unsupported_faults(self, faults) -> list[str]:
        out = []
        if "clock" in faults:
            out.append(CLOCK_REFUSAL)
        if "vote-crash" in faults:
            out.append("vote-crash: Patroni holds no elections of votes (a replica takes the leader key in etcd "
                    "when it expires), and neither it nor Debian's etcd has failpoints to crash at")
        return out

    def data_dir(self, layout: ClusterLayout) -> str:
        """Everything a node keeps: pg/ (PostgreSQL's data directory, WAL included), etcd/ (the node's DCS
        member) and pgpass."""
        return layout.data_dir

    def bugs(self) -> dict[str, str]:
        return {}
