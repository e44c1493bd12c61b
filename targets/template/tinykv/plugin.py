"""The tinykv target plugin: what splitbrain needs to build, start, drive and observe a tinykv cluster.

splitbrain finds this class through the entry point in pyproject.toml
(`--target tinykv` once installed) or by name (`--target tinykv.plugin:TinyKV`
with this folder on PYTHONPATH). docs/writing-a-target.md in splitbrain is the
guide to each method.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from targets.base import CLOCK_FILE, ClusterLayout, TargetOptions, unsupported_by_clock_control
from targets.image import ImageRecipe
from targets.raftkv.plugin import RaftKV, RaftKVClient

HERE = Path(__file__).resolve().parent
# Where image_recipe puts node.py: image paths are relative to /opt/splitbrain.
NODE_PROGRAM = "/opt/splitbrain/tinykv/node.py"


class TinyKV:
    name = "tinykv"
    # tinykv's nodes never talk to each other; the partition nemesis still
    # probes this port to verify a partition (a refused connect is "reachable").
    peer_port = 7000
    client_port = 8000

    def image_recipe(self) -> ImageRecipe:
        # Only the node program goes in: editing this plugin does not rebuild the image.
        return ImageRecipe(name=self.name, files=(("tinykv/node.py", HERE / "node.py"),))

    def node_command(self, node_id: str, cluster: ClusterLayout, options: TargetOptions) -> list[str]:
        return [
            "python3", "-u", NODE_PROGRAM,
            "--id", node_id,
            "--primary", cluster.node_ids[0],
            "--listen", cluster.client_address(node_id),
            "--data", cluster.data_dir,
            "--clock-file", cluster.clock_file,
        ]

    def node_environment(self, node_id: str, cluster: ClusterLayout, options: TargetOptions) -> dict[str, str]:
        return {"PYTHONDONTWRITEBYTECODE": "1"}

    def clock_control(self) -> str | None:
        return CLOCK_FILE  # node.py reads the clock file for the wall_time it reports

    def client(self, addresses: dict[str, str], timeout: float = 1.0) -> RaftKVClient:
        # tinykv speaks raftkv's HTTP API, so raftkv's client (and its ok/fail/info rules) serves as is.
        return RaftKVClient(addresses, timeout)

    async def status_probe(self, address: str, timeout: float = 0.5) -> dict[str, Any] | None:
        return await RaftKV().status_probe(address, timeout)  # GET /status, the same route as raftkv's

    def unsupported_faults(self, faults) -> list[str]:
        return unsupported_by_clock_control(self, faults)

    def data_dir(self, layout: ClusterLayout) -> str:
        """Where node.py keeps what it must not lose in a crash: the disk faults act here."""
        return layout.data_dir

    def bugs(self) -> dict[str, str]:
        return {}
