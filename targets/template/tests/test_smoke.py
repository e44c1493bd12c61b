"""tinykv's smoke tests: the plugin is found, a node serves the API, and a short chaos run of a cluster is valid.

`pytest` runs the first two in a second or two (no Docker); `pytest -m docker`
runs the last: a real `splitbrain run` of three nodes with kills (about 30 s).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from targets.base import ClusterLayout, NodeAddress, TargetOptions
from targets.registry import get_target

NAME = "tinykv"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_target_is_found_by_its_name_and_keeps_the_contract():
    target = get_target(NAME)  # through the entry point: the package must be installed
    assert target.name == NAME
    layout = ClusterLayout(nodes=(NodeAddress("n1", "10.0.0.11"), NodeAddress("n2", "10.0.0.12")),
                           peer_port=target.peer_port, client_port=target.client_port)
    argv = target.node_command("n2", layout, TargetOptions())
    images_paths = {"/opt/splitbrain/" + dest for dest, _src in target.image_recipe().files}
    assert any(arg in images_paths for arg in argv), "node_command runs a file the image holds"
    assert all(Path(src).is_file() for _dest, src in target.image_recipe().files)
    assert target.node_environment("n2", layout, TargetOptions()) is not None
    assert target.unsupported_faults(["partition", "kill", "clock"]) == []


def test_a_node_serves_reads_writes_and_cas_and_keeps_them_over_a_restart(tmp_path):
    target = get_target(NAME)
    address = f"127.0.0.1:{free_port()}"
    layout = ClusterLayout(nodes=(NodeAddress("n1", "127.0.0.1"),), peer_port=target.peer_port,
                           client_port=int(address.rpartition(":")[2]), data_dir=str(tmp_path / "data"),
                           clock_file=str(tmp_path / "clock.json"))
    [(_dest, program)] = target.image_recipe().files  # run the file the image would hold, here
    argv = target.node_command("n1", layout, TargetOptions())
    argv = [sys.executable if a == "python3" else str(program) if a.startswith("/opt/splitbrain/") else a
            for a in argv]

    async def probe_until_up() -> dict:
        for _ in range(100):
            status = await target.status_probe(address, 0.2)
            if status is not None:
                return status
            await asyncio.sleep(0.05)
        raise AssertionError("the node never answered its status probe")

    async def session(first: bool) -> list:
        status = await probe_until_up()
        assert status["role"] == "leader" and status["leader"] == "n1" and "term" in status
        client = target.client({"n1": address}, timeout=1.0)
        try:
            ops = [{"f": "read", "key": "k"}]
            if first:
                ops = [{"f": "write", "key": "k", "value": 1}, {"f": "cas", "key": "k", "value": [1, 2]},
                       {"f": "cas", "key": "k", "value": [1, 3]}, *ops]
            return [(await client.invoke("n1", op))["type"] for op in ops] + [
                (await client.invoke("n1", {"f": "read", "key": "k"}))["value"]]
        finally:
            await client.close()

    for first, expected in ((True, ["ok", "ok", "fail", "ok", 2]), (False, ["ok", 2])):
        node = subprocess.Popen(argv, stderr=subprocess.PIPE)
        try:
            assert asyncio.run(session(first)) == expected
        finally:
            node.kill()  # like the kill nemesis: SIGKILL, then a restart finds what was acknowledged
            node.wait()


@pytest.mark.docker
def test_a_short_chaos_run_of_three_nodes_is_valid(tmp_path):
    run = subprocess.run(
        [sys.executable, "-c", "import sys; from harness.cli import main; sys.exit(main())",  # = `splitbrain`
         "run", "--target", NAME, "--nodes", "3", "--workload", "register",
         "--nemesis", "kill,partition", "--nemesis-interval", "2", "--time-limit", "8", "--warmup", "1",
         "--seed", "1", "--quiet", "--store", str(tmp_path / "store")],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "valid (exit 0)" in run.stdout
