"""The ZooKeeper target plugin: Debian's zookeeper 3.8 as a ZAB ensemble, driven through kazoo, observed through its AdminServer.

The zoo.cfg and java command are targets.zookeeper.ensemble's, the client
and its outcome rules targets.zookeeper.client's, the reading of the probe's
answers targets.zookeeper.admin's, the options targets.zookeeper.settings';
the whole story is in targets/zookeeper/README.md.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from targets.base import FAKETIME, ClusterLayout, TargetOptions
from targets.image import ImageRecipe
from targets.options import refusals
from targets.zookeeper import admin, ensemble
from targets.zookeeper.client import ZooKeeperClient
from targets.zookeeper.settings import ZooKeeperSettings

HERE = Path(__file__).resolve().parent
NODE_SCRIPT = "/opt/splitbrain/zookeeper/node.sh"  # where image_recipe puts node.sh


def admin_http(timeout: float) -> httpx.AsyncClient:
    """HTTP to the AdminServers; trust_env=False: no proxy from the environment between us and the nodes."""
    return httpx.AsyncClient(timeout=timeout, trust_env=False)


class ZooKeeper:
    """ZooKeeper 3.8.0 from Debian bookworm (zookeeper), an ensemble of the run's nodes."""

    name = "zookeeper"
    peer_port = ensemble.ELECTION_PORT  # every server listens on it (the quorum port only the leader)
    client_port = ensemble.CLIENT_PORT

    def __init__(self) -> None:
        # The contract gives settings and the layout to node_command only; the client needs the
        # read mode and the probe the myids, so the target keeps what its nodes were started with.
        self.settings = ZooKeeperSettings()
        self.names: dict[int, str] = {}  # myid -> node id
        self.by_ip: dict[str, str] = {}  # ip -> node id

    def image_recipe(self) -> ImageRecipe:
        return ImageRecipe(
            name=self.name,
            files=(("zookeeper/node.sh", HERE / "node.sh"),
                   ("zookeeper/log4j.properties", HERE / "log4j.properties")),
            packages=("zookeeper",),  # with its Java runtime (default-jre: OpenJDK 17)
        )

    def unsupported_options(self, settings: dict[str, Any]) -> list[str]:
        return refusals(ZooKeeperSettings.parse, settings)

    def node_command(self, node_id: str, cluster: ClusterLayout, options: TargetOptions) -> list[str]:
        self.settings = ZooKeeperSettings.parse(options.settings)
        ids = ensemble.myids(cluster)
        self.names = {i: n for n, i in ids.items()}
        self.by_ip = {n.ip: n.id for n in cluster.nodes}
        return ["sh", NODE_SCRIPT, ensemble.config_path(cluster), ensemble.zoo_cfg(cluster, self.settings),
                cluster.data_dir, str(ids[node_id]), *ensemble.java_command(cluster)]

    def node_environment(self, node_id: str, cluster: ClusterLayout, options: TargetOptions) -> dict[str, str]:
        # libfaketime (the harness preloads it: clock_control is FAKETIME) leaves the monotonic
        # clock alone: a JVM whose System.nanoTime is faked hangs in its first timed wait
        # (libfaketime's known trouble with Java). The wall clock, System.currentTimeMillis, is skewed.
        return {"FAKETIME_DONT_FAKE_MONOTONIC": "1"}

    def clock_control(self) -> str | None:
        return FAKETIME

    def client(self, addresses: dict[str, str], timeout: float = 1.0) -> ZooKeeperClient:
        return ZooKeeperClient(addresses, timeout, sync_reads=self.settings.sync_reads)

    async def status_probe(self, address: str, timeout: float = 0.5) -> dict[str, Any] | None:
        ip = address.rsplit(":", 1)[0]
        base = f"http://{ip}:{ensemble.ADMIN_PORT}/commands"
        async with admin_http(timeout) as http:
            try:
                srvr, leader = await asyncio.gather(http.get(f"{base}/srvr"), http.get(f"{base}/leader"))
                view = admin.status_view(srvr.json(), leader.json(), self.names, me=self.by_ip.get(ip))
            except (httpx.HTTPError, ValueError):
                return None
        if view is not None:
            view["wall_time"] = admin.wall_time(srvr.headers.get("date"))
        return view

    def unsupported_faults(self, faults) -> list[str]:
        if "vote-crash" in faults:
            return ["vote-crash: ZooKeeper has no failpoints: it cannot crash itself right after "
                    "acknowledging an election vote"]
        return []

    def bugs(self) -> dict[str, str]:
        return {}
