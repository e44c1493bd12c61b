"""The Redis Sentinel target plugin: Debian's redis-server and redis-sentinel 7.0, a Sentinel beside every server.

The config files are targets.redis_sentinel.deploy's, the client and its
outcome rules targets.redis_sentinel.client's, the reading of the probe's
answers targets.redis_sentinel.probe's, the options
targets.redis_sentinel.settings'; the whole story is in
targets/redis_sentinel/README.md.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from targets.base import ClusterLayout, TargetOptions
from targets.image import ImageRecipe
from targets.options import refusals
from targets.redis_sentinel import deploy, probe
from targets.redis_sentinel.client import RedisSentinelClient
from targets.redis_sentinel.settings import RedisSentinelSettings

HERE = Path(__file__).resolve().parent
NODE_SCRIPT = "/opt/splitbrain/redis_sentinel/node.sh"  # where image_recipe puts node.sh
# Tried in the node image (README.md, "Faults"): libfaketime cannot start redis-server at all.
CLOCK_REFUSAL = ("clock: Debian's redis-server allocates with jemalloc, whose start-up calls clock_gettime while "
                 "libfaketime 0.9.10 is still initializing, and redis-server exits at once under it (\"Cannot recover "
                 "from unexpected recursive calls to clock_gettime()\", with or without FAKETIME_DONT_FAKE_MONOTONIC "
                 "and FAKETIME_FORCE_MONOTONIC_FIX=0); no clock fault can be injected into it")


async def ask(ip: str, port: int, commands: list[tuple[Any, ...]], timeout: float) -> list[Any] | None:
    """The replies to commands sent pipelined on one fresh connection; None if they did not all come."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(ip, port)
            try:
                writer.write(b"".join(probe.encode(*c) for c in commands))
                await writer.drain()
                data = b""
                while True:
                    try:
                        return probe.parse_all(data, len(commands))
                    except probe.Incomplete:
                        chunk = await reader.read(65536)
                        if not chunk:
                            return None
                        data += chunk
            finally:
                writer.close()
    except (OSError, TimeoutError, ValueError):
        return None


class RedisSentinel:
    """Redis 7.0.15 and Redis Sentinel from Debian bookworm: one primary, its replicas, a Sentinel per node."""

    name = "redis-sentinel"
    peer_port = deploy.REDIS_PORT  # replication, and Sentinel's PINGs and INFO, go to the server's port
    client_port = deploy.REDIS_PORT

    def __init__(self) -> None:
        # The contract gives the layout to node_command only; the probe maps the IPs Redis and
        # Sentinel report to node ids, and remembers the epoch each primary was promoted in.
        self.settings = RedisSentinelSettings()
        self.by_ip: dict[str, str] = {}
        self.promoted: dict[str, int] = {}  # node id -> epoch its own Sentinel last named it primary in

    def image_recipe(self) -> ImageRecipe:
        return ImageRecipe(
            name=self.name,
            files=(("redis_sentinel/node.sh", HERE / "node.sh"),),
            packages=("redis-server", "redis-sentinel", "redis-tools"),  # redis-tools: redis-cli, for debugging
        )

    def unsupported_options(self, settings: dict[str, Any]) -> list[str]:
        return refusals(RedisSentinelSettings.parse, settings)

    def node_command(self, node_id: str, cluster: ClusterLayout, options: TargetOptions) -> list[str]:
        self.settings = RedisSentinelSettings.parse(options.settings)
        self.by_ip = {n.ip: n.id for n in cluster.nodes}
        return ["sh", NODE_SCRIPT, cluster.data_dir,
                deploy.redis_conf(cluster, node_id, self.settings),
                deploy.sentinel_conf(cluster, node_id, self.settings)]

    def node_environment(self, node_id: str, cluster: ClusterLayout, options: TargetOptions) -> dict[str, str]:
        return {}

    def clock_control(self) -> str | None:
        return None  # see unsupported_faults

    def client(self, addresses: dict[str, str], timeout: float = 1.0) -> RedisSentinelClient:
        return RedisSentinelClient(addresses, timeout)

    async def status_probe(self, address: str, timeout: float = 0.5) -> dict[str, Any] | None:
        ip, _, port = address.rpartition(":")
        server, sentinel = await asyncio.gather(
            ask(ip, int(port), [("ROLE",), ("TIME",)], timeout),
            ask(ip, deploy.SENTINEL_PORT, [("SENTINEL", "MASTER", deploy.MASTER_NAME)], timeout))
        if server is None:
            return None
        me = self.by_ip.get(ip)
        role = probe.parse_role(server[0])
        master = probe.parse_sentinel_master(sentinel[0]) if sentinel else None
        if role is not None and role["role"] == "slave" and me is not None:
            self.promoted.pop(me, None)  # demoted: a later promotion has its own epoch
        view = probe.status_view(role, master, self.by_ip, me, self.promoted.get(me) if me else None)
        epoch = probe.names_me(view, me)
        if epoch is not None and me is not None:
            self.promoted[me] = epoch
            view["term"] = epoch
        if view is not None:
            view["wall_time"] = probe.parse_time(server[1])
        return view

    def unsupported_faults(self, faults) -> list[str]:
        out = []
        if "clock" in faults:
            out.append(CLOCK_REFUSAL)
        if "vote-crash" in faults:
            out.append("vote-crash: Redis Sentinel has no failpoints: a Sentinel cannot crash itself right after "
                       "voting for a failover leader")
        return out

    def data_dir(self, layout: ClusterLayout) -> str:
        """redis/ (the server's config, RDB and append-only file) and sentinel/ (the config Sentinel rewrites)."""
        return layout.data_dir

    def bugs(self) -> dict[str, str]:
        return {}
