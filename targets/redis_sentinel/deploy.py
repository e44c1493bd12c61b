"""The files one node starts from: redis.conf and sentinel.conf, written from the run's layout and settings.

Both are written once, on the node's first start (node.sh leaves them alone
after that): Sentinel rewrites its own file as it learns (the current
primary, the config epoch, the other Sentinels, its own id) and rewrites the
server's (CONFIG REWRITE, with every REPLICAOF it sends), so a restarted node
starts from what it had learned, as a deployed one does.

n1 is the primary at the start, every other server a replica of it; each
Sentinel monitors n1 as the master `mymaster` and finds the replicas and the
other Sentinels through it (INFO, and hello messages on its
__sentinel__:hello channel).
"""

from __future__ import annotations

from targets.base import ClusterLayout
from targets.redis_sentinel.settings import RedisSentinelSettings

MASTER_NAME = "mymaster"
REDIS_PORT = 6379
SENTINEL_PORT = 26379


def first_primary(layout: ClusterLayout) -> str:
    return layout.nodes[0].id


def redis_dir(layout: ClusterLayout) -> str:
    return f"{layout.data_dir}/redis"


def sentinel_dir(layout: ClusterLayout) -> str:
    return f"{layout.data_dir}/sentinel"


def redis_conf(layout: ClusterLayout, node_id: str, s: RedisSentinelSettings) -> str:
    lines = [
        "bind 0.0.0.0",
        "protected-mode no",
        f"port {REDIS_PORT}",
        "daemonize no",
        'logfile ""',
        f"dir {redis_dir(layout)}",
        # The address a replica gives its primary (what Sentinel sees in the primary's INFO).
        f"replica-announce-ip {layout.ip(node_id)}",
        f"appendonly {'yes' if s.appendonly else 'no'}",
        f"appendfsync {s.appendfsync}",
        f"min-replicas-to-write {s.min_replicas_to_write}",
        f"min-replicas-max-lag {s.min_replicas_max_lag}",
    ]
    if node_id != first_primary(layout):
        lines.append(f"replicaof {layout.ip(first_primary(layout))} {REDIS_PORT}")
    return "\n".join(lines) + "\n"


def sentinel_conf(layout: ClusterLayout, node_id: str, s: RedisSentinelSettings) -> str:
    primary_ip = layout.ip(first_primary(layout))
    lines = [
        "bind 0.0.0.0",
        "protected-mode no",
        f"port {SENTINEL_PORT}",
        "daemonize no",
        'logfile ""',
        f"dir {sentinel_dir(layout)}",
        f"sentinel announce-ip {layout.ip(node_id)}",
        f"sentinel monitor {MASTER_NAME} {primary_ip} {REDIS_PORT} {s.quorum_of(len(layout.nodes))}",
        f"sentinel down-after-milliseconds {MASTER_NAME} {s.down_after_ms}",
        f"sentinel failover-timeout {MASTER_NAME} {s.failover_timeout_ms}",
        f"sentinel parallel-syncs {MASTER_NAME} 1",
    ]
    return "\n".join(lines) + "\n"
