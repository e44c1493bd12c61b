"""The `redis` target: N standalone Redis servers, each its own primary, no replication, no Sentinel.

The independent primaries antirez's Redlock is defined over (targets/candidates/recipes/redlock.py). The
same Debian 12 redis-server 7.0.15 as targets/redis_sentinel, from the same image (its recipe, unchanged:
one image for both); the node is redis-server itself, configured on its command line, as PID 1, so a kill
ends it. Everything is in targets/redis/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from targets.base import ClusterLayout, TargetOptions
from targets.image import ImageRecipe
from targets.options import refusals, unknown
from targets.redis_sentinel import probe
from targets.redis_sentinel.client import RedisSentinelClient
from targets.redis_sentinel.deploy import REDIS_PORT
from targets.redis_sentinel.plugin import CLOCK_REFUSAL, RedisSentinel, ask
from targets.redis_sentinel.settings import PERSISTENCE, canonical, persistence


@dataclass(frozen=True)
class RedisSettings:
    appendonly: bool = False
    appendfsync: str = "everysec"

    @classmethod
    def parse(cls, settings: dict[str, Any] | None) -> RedisSettings:
        given = {canonical(k): v for k, v in (settings or {}).items()}
        unknown("redis", given, PERSISTENCE)
        return cls(*persistence(given))


def server_args(layout: ClusterLayout, s: RedisSettings) -> list[str]:
    """redis-server's command line: what redis.conf would say, with nothing to replicate from."""
    return ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--port", str(REDIS_PORT),
            "--dir", layout.data_dir, "--appendonly", "yes" if s.appendonly else "no", "--appendfsync", s.appendfsync]


def status_view(role: dict[str, Any] | None, me: str | None, by_ip: dict[str, str]) -> dict[str, Any] | None:
    """The observer's view of a standalone server: a master leads itself, with no term (nothing elects it,
    and no two servers share one: the split-brain checker compares only leaders of known terms)."""
    if role is None:
        return None
    if role["role"] == "master":
        return {"role": "leader", "term": None, "leader": me, "redis_role": "master",
                "repl_offset": role.get("offset")}
    # Someone made it a replica (REPLICAOF by hand): say so.
    return {"role": "follower", "term": None, "leader": by_ip.get(role.get("master_ip") or ""),
            "redis_role": "slave", "link": role.get("link"), "repl_offset": role.get("offset")}


class StandaloneClient(RedisSentinelClient):
    """The Sentinel target's operations and outcome rules, each sent to the server the client is bound to."""

    async def primary(self, node_id: str, f: str) -> tuple[str, int]:
        ip, _, port = self.addresses[node_id].rpartition(":")
        return ip, int(port)


class Redis:
    """Redis 7.0.15 from Debian bookworm, standalone: every node an independent primary."""

    name = "redis"
    peer_port = REDIS_PORT  # nothing flows between the servers; the partition's probe aims here
    client_port = REDIS_PORT

    def __init__(self) -> None:
        self.by_ip: dict[str, str] = {}

    def image_recipe(self) -> ImageRecipe:
        return RedisSentinel().image_recipe()  # the same image: redis-server is in it

    def unsupported_options(self, settings: dict[str, Any]) -> list[str]:
        return refusals(RedisSettings.parse, settings)

    def node_command(self, node_id: str, cluster: ClusterLayout, options: TargetOptions) -> list[str]:
        self.by_ip = {n.ip: n.id for n in cluster.nodes}
        return server_args(cluster, RedisSettings.parse(options.settings))

    def node_environment(self, node_id: str, cluster: ClusterLayout, options: TargetOptions) -> dict[str, str]:
        return {}

    def clock_control(self) -> str | None:
        return None  # see unsupported_faults

    def client(self, addresses: dict[str, str], timeout: float = 1.0) -> StandaloneClient:
        return StandaloneClient(addresses, timeout)

    async def status_probe(self, address: str, timeout: float = 0.5) -> dict[str, Any] | None:
        ip, _, port = address.rpartition(":")
        server = await ask(ip, int(port), [("ROLE",), ("TIME",)], timeout)
        if server is None:
            return None
        view = status_view(probe.parse_role(server[0]), self.by_ip.get(ip), self.by_ip)
        if view is not None:
            view["wall_time"] = probe.parse_time(server[1])
        return view

    def unsupported_faults(self, faults) -> list[str]:
        out = [CLOCK_REFUSAL] if "clock" in faults else []
        if "vote-crash" in faults:
            out.append("vote-crash: standalone Redis servers elect nothing")
        return out

    def bugs(self) -> dict[str, str]:
        return {}
