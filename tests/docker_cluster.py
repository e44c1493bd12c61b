"""A Docker cluster of one target for a test module: up for the test, then torn down and cleaned by its own run id."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator

from harness.cluster import DockerCluster, clean
from targets.base import TargetOptions
from targets.registry import get_target


@contextlib.contextmanager
def docker_cluster(target: str, nodes: int = 3, timeout: float = 60.0,
                   options: TargetOptions | None = None, faults: tuple[str, ...] = ()) -> Iterator[DockerCluster]:
    """faults: the fault families whose node layers the nodes get (nemesis.registry.node_layers)."""
    from nemesis.registry import node_layers

    run_id = f"test-{target}-{uuid.uuid4().hex[:8]}"
    plugin = get_target(target)
    c = DockerCluster(run_id, plugin, nodes, options or TargetOptions(), log=lambda s: None,
                      layers=node_layers(faults, plugin))
    try:
        c.up(timeout=timeout)
        yield c
    finally:
        c.teardown()
        clean(run_id)  # also whatever a failed up() left behind, and only this run's


def settled(cluster: DockerCluster, timeout: float = 15.0, same_term: bool = True) -> dict:
    """The probes once every node answers, exactly one leads, and every node names it as leader (and,
    with same_term, reports its term: a Patroni replica names its timeline only once it streams)."""
    deadline = time.monotonic() + timeout
    while True:
        probes = cluster.probe_all()
        leaders = [n for n, p in probes.items() if p and p["role"] == "leader"]
        if (all(probes.values()) and len(leaders) == 1
                and {p["leader"] for p in probes.values()} == set(leaders)
                and (not same_term or len({p["term"] for p in probes.values()}) == 1)):
            return probes
        assert time.monotonic() < deadline, f"no settled leader: {probes}"
        time.sleep(0.1)


def client_ops(target: str, cluster: DockerCluster, pairs: list[tuple[str, dict]], timeout: float = 2.0,
               **client_settings) -> list[dict]:
    """The outcomes of (node, op) pairs, one after another, through a fresh client of the target."""

    async def go():
        client = get_target(target).client(cluster.addresses, timeout=timeout)
        for name, value in client_settings.items():
            setattr(client, name, value)
        try:
            return [await client.invoke(node, op) for node, op in pairs]
        finally:
            await client.close()

    return asyncio.run(go())
