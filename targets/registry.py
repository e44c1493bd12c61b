"""Target plugins by name: the one place that maps a spec's `target:` to a plugin.

A target is found the ways every plugin is (plugins.registry): built in
(raftkv, paxoskv), installed by another package under the entry-point group
`splitbrain.targets`, registered at run time, or named `package.module:Class`
when it is not installed. Nothing is imported until a run asks for it, so a
target that fails to import breaks only its own runs (PluginError, one line).
"""

from __future__ import annotations

from plugins.registry import PluginError, Registry
from targets.base import Target

TARGETS: Registry[type[Target]] = Registry(
    "target",
    builtins={
        "raftkv": "targets.raftkv.plugin:RaftKV",
        "paxoskv": "targets.paxoskv.plugin:PaxosKV",
        "etcd": "targets.etcd.plugin:Etcd",
        "zookeeper": "targets.zookeeper.plugin:ZooKeeper",
        "patroni": "targets.patroni.plugin:Patroni",
        "redis-sentinel": "targets.redis_sentinel.plugin:RedisSentinel",
        "redis": "targets.redis.plugin:Redis",
    },
    group="splitbrain.targets",
)

__all__ = ["TARGETS", "PluginError", "get_target", "target_names"]


def target_names() -> list[str]:
    """Every target a spec may name (built in and installed), without importing any."""
    return TARGETS.names()


def get_target(name: str) -> Target:
    """A new instance of the target called name (or `package.module:Class`); PluginError when it cannot be had."""
    value = TARGETS.load(name)
    try:
        return value() if isinstance(value, type) else value  # a class, or a ready instance
    except Exception as e:  # the plugin's own constructor: its fault, said in one line like an import error
        raise PluginError(f"target {name!r} could not be created: {type(e).__name__}: {e}") from e
