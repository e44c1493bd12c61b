"""A Docker cluster of one target for a test module: up for the test, then torn down and cleaned by its own run id."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from harness.cluster import DockerCluster, clean
from targets.base import TargetOptions
from targets.registry import get_target


@contextlib.contextmanager
def docker_cluster(target: str, nodes: int = 3, timeout: float = 60.0,
                   options: TargetOptions | None = None) -> Iterator[DockerCluster]:
    run_id = f"test-{target}-{uuid.uuid4().hex[:8]}"
    c = DockerCluster(run_id, get_target(target), nodes, options or TargetOptions(), log=lambda s: None)
    try:
        c.up(timeout=timeout)
        yield c
    finally:
        c.teardown()
        clean(run_id)  # also whatever a failed up() left behind, and only this run's
