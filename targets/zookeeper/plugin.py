"""The ZooKeeper target plugin: Debian's zookeeper 3.8 as a ZAB ensemble, driven through kazoo, observed through its AdminServer.

The zoo.cfg and java command are targets.zookeeper.ensemble's, the client
and its outcome rules targets.zookeeper.client's, the reading of the probe's
answers targets.zookeeper.probe's, the options targets.zookeeper.settings';
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
from targets.zookeeper import ensemble, probe
from targets.zookeeper.client import ZooKeeperClient
from targets.zookeeper.settings import ZooKeeperSettings

HERE = Path(__file__).resolve().parent
NODE_SCRIPT = "/opt/splitbrain/zookeeper/node.sh"  # where image_recipe puts node.sh


def admin_http(timeout: float) -> httpx.AsyncClient:
    """HTTP to the AdminServers; trust_env=False: no proxy from the environment between us and the nodes.
    verify=False: plain HTTP only, and it spares loading the CA bundle, 40 ms of CPU per client here:
    with a client per question, the probes of five nodes at 20 Hz wanted more CPU than two cores have."""
    return httpx.AsyncClient(timeout=timeout, trust_env=False, verify=False)


async def four_letter(ip: str, port: int, word: str, timeout: float) -> str | None:
    """A four-letter word's answer (the server closes the connection after it), None if none came."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(ip, port)
            try:
                writer.write(word.encode())
                await writer.drain()
                return (await reader.read()).decode("utf-8", "replace")
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return None


async def admin_leader(http: httpx.AsyncClient, ip: str) -> tuple[int | None, float | None]:
    """(the myid of the leader the server follows, its clock) from the AdminServer; Nones if it did not say."""
    try:
        resp = await http.get(f"http://{ip}:{ensemble.ADMIN_PORT}/commands/leader")
        return probe.leader_myid(resp.json()), probe.wall_time(resp.headers.get("date"))
    except (httpx.HTTPError, ValueError):
        return None, None


async def current_epoch(http: httpx.AsyncClient, ip: str) -> int | None:
    """The epoch the server last accepted as current (its data dir's currentEpoch), None if unknown."""
    try:
        resp = await http.get(f"http://{ip}:{ensemble.EPOCH_PORT}/currentEpoch")
        return probe.parse_epoch_file(resp.text) if resp.status_code == 200 else None
    except httpx.HTTPError:
        return None


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
                cluster.data_dir, str(ids[node_id]), str(ensemble.EPOCH_PORT), *ensemble.java_command(cluster)]

    def node_environment(self, node_id: str, cluster: ClusterLayout, options: TargetOptions) -> dict[str, str]:
        # libfaketime (the harness preloads it: clock_control is FAKETIME) must leave the JVM's
        # monotonic clock and timed waits alone. With the monotonic clock faked a JVM hangs in its
        # first timed wait; with libfaketime 0.9.10's "monotonic fix" for pthread_cond_timedwait
        # (on by default with Debian's glibc) every JVM thread's timed wait spins: three idle
        # servers took 60% of a core each, took 30 s to start and lost every leader within seconds.
        # Without both, they start in 3 s and idle, and the wall clock, System.currentTimeMillis,
        # is still skewed.
        return {"FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_FORCE_MONOTONIC_FIX": "0"}

    def clock_control(self) -> str | None:
        return FAKETIME

    def client(self, addresses: dict[str, str], timeout: float = 1.0) -> ZooKeeperClient:
        return ZooKeeperClient(addresses, timeout, sync_reads=self.settings.sync_reads)

    async def status_probe(self, address: str, timeout: float = 0.5) -> dict[str, Any] | None:
        # srvr answers from the moment the client port opens; the AdminServer (Jetty) starts
        # seconds later on a busy machine, and is asked only whom the server follows.
        ip, _, port = address.rpartition(":")
        async with admin_http(timeout) as http:
            text, (leader_id, wall), current = await asyncio.gather(
                four_letter(ip, int(port), "srvr", timeout), admin_leader(http, ip), current_epoch(http, ip))
        view = probe.status_view(probe.parse_srvr(text) if text is not None else None, leader_id,
                                 self.names, me=self.by_ip.get(ip), current_epoch=current)
        if view is not None:
            view["wall_time"] = wall
        return view

    def unsupported_faults(self, faults) -> list[str]:
        if "vote-crash" in faults:
            return ["vote-crash: ZooKeeper has no failpoints: it cannot crash itself right after "
                    "acknowledging an election vote"]
        return []

    def data_dir(self, layout: ClusterLayout) -> str:
        """ZooKeeper's dataDir: myid, and version-2 with the transaction logs, snapshots and the epoch files."""
        return layout.data_dir

    def bugs(self) -> dict[str, str]:
        return {}
