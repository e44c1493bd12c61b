"""The disk faults in Docker: lose-unsynced really drops what was not fsynced, and corrupt really changes a file.

Marked docker. Each cluster is torn down and cleaned by its own run id (tests/docker_cluster.py).
"""

from __future__ import annotations

import random

import pytest
from docker_cluster import client_ops, docker_cluster, settled

from nemesis.core import Nemesis
from targets.base import TargetOptions

pytestmark = pytest.mark.docker


@pytest.mark.parametrize("bugs", [("no-fsync",), ()], ids=["no-fsync", "correct"])
def test_losing_every_nodes_unsynced_writes_loses_an_acknowledged_write_only_without_fsync(bugs):
    with docker_cluster("raftkv", 3, options=TargetOptions(bugs=bugs), faults=("lose-unsynced",)) as c:
        nem = Nemesis(c, c.target, ["lose-unsynced"], random.Random(1))
        assert nem.problems() == []
        leader = next(n for n, p in settled(c).items() if p["role"] == "leader")
        [put] = client_ops("raftkv", c, [(leader, {"f": "write", "key": "k", "value": 7})])
        assert put["type"] == "ok", put

        lost = nem.invoke({"f": "lose-unsynced", "value": {"nodes": list(c.node_ids)}})
        assert lost["evidence"]["verified"] and lost["value"] == c.node_ids
        assert set(c.states().values()) == {"exited"}
        wal = {n: e["files"].get(f"{c.layout.data_dir}/wal") for n, e in lost["evidence"]["nodes"].items()}
        if bugs:
            # Nothing of the WAL was fsynced since the node started: every record is dropped.
            for n, f in wal.items():
                assert f and f["size_after"] < f["size_before"] and f["dropped_bytes"] > 0, (n, f)
                assert f["sha256_after"] != f["sha256_before"]
        else:
            assert all(f is None or f["size_after"] >= 8 for f in wal.values())  # at most unsynced commit records

        back = nem.invoke({"f": "restart-unsynced", "value": {"nodes": list(c.node_ids)}})
        layers = back["evidence"]["unsynced_layer"]  # a new layer on each node, not the frozen one
        assert set(layers) == set(c.node_ids) and all(v["mounted"] for v in layers.values())
        for _ in range(10):  # a fresh cluster on a loaded machine may still change leaders or time out
            leader = next(n for n, p in settled(c, timeout=30).items() if p["role"] == "leader")
            [read] = client_ops("raftkv", c, [(leader, {"f": "read", "key": "k"})], timeout=5.0)
            if read["type"] == "ok":
                break
        assert read["type"] == "ok", read
        assert read["value"] == (None if bugs else 7)  # the acknowledged write is gone only with the bug
        healed = nem.heal_all()
        assert set(healed["evidence"]["unsynced-layer"]) == set(c.node_ids)


def test_corrupt_changes_a_down_nodes_file_and_the_heal_gives_a_refusing_node_its_bytes_back():
    with docker_cluster("raftkv", 1, faults=()) as c:
        nem = Nemesis(c, c.target, ["corrupt"], random.Random(2))
        settled(c)
        done = nem.invoke({"f": "corrupt", "value": {"nodes": ["n1"], "mode": "bitflip", "file": "FORMAT"}})
        ev = done["evidence"]["nodes"]["n1"]
        assert ev["file"] == f"{c.layout.data_dir}/FORMAT" and ev["state"] == "exited"
        assert ev["sha256_after"] != ev["sha256_before"] and len(ev["flipped_bits"]) == 1
        import hashlib

        assert hashlib.sha256(c.read_file("n1", ev["file"])).hexdigest() == ev["sha256_after"]
        # raftkv reads its FORMAT line first and refuses a data dir it does not know.
        started = nem.invoke({"f": "restart-corrupted", "value": {"nodes": ["n1"]}})
        assert started["evidence"]["exited_at_start"] == {"n1": 2}  # its usage-error status
        healed = nem.heal_all()
        assert f"n1:{ev['file']}" in healed["evidence"]["repair-corrupted"]["repaired"]
        assert c.state("n1") == "running" and c.probe("n1") is not None
        assert hashlib.sha256(c.read_file("n1", ev["file"])).hexdigest() == ev["sha256_before"]


def test_without_the_fuse_device_the_node_refuses_to_start_in_one_line_naming_the_layer():
    import dataclasses
    import uuid

    from harness.cluster import ClusterError, DockerCluster, clean
    from nemesis.registry import node_layers
    from targets.registry import get_target

    target = get_target("raftkv")
    [layer] = node_layers(["lose-unsynced"], target)
    run_id = f"test-raftkv-{uuid.uuid4().hex[:8]}"
    c = DockerCluster(run_id, target, 1, log=lambda s: None, layers=(dataclasses.replace(layer, devices=()),))
    try:
        with pytest.raises(ClusterError) as e:
            c.up(timeout=30)
        assert "unsyncedfs: cannot put the lose-unsynced layer over /var/lib/splitbrain/data" in str(e.value)
        assert "\n" not in str(e.value)
    finally:
        c.teardown()
        clean(run_id)
