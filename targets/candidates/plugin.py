"""Election candidates as nodes: the image, command and status probe of a candidate container.

Not a target a run tests (it is not in targets.registry): an election run has the coordination
service's nodes (n1..nN, the spec's target) and beside them, on the same network, candidate nodes
(c1..cK) described by this class, which the nemesis drives. It implements the parts of the Target
contract that the Docker cluster and the nemesis use. Candidates run Python under libfaketime, so
the clock nemesis can skew them; the monotonic clock is left alone (FAKETIME_DONT_FAKE_MONOTONIC),
which is what lets the harness place their claims on its own timeline (see candidate.py).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from targets.base import FAKETIME, NETWORK_FAULTS, ClusterLayout, TargetOptions
from targets.image import ImageRecipe, files_under

REPO_ROOT = Path(__file__).resolve().parents[2]
PORT = 8700  # the candidate's /status and /journal
REQUIREMENTS = "targets/candidates/requirements.txt"  # what pip installs from PyPI, hashes pinned
PIP_CA = "pip/ca-certificates.crt"


def host_ca_bundle() -> Path | None:
    """The CA certificates this machine trusts, for pip inside the image build: where PyPI is reached
    through a TLS-inspecting proxy, the image's own trust store would refuse it (the hashes in
    REQUIREMENTS still decide what is installed). None when there is no bundle file."""
    for name in (ssl.get_default_verify_paths().cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if name and Path(name).is_file():
            return Path(name)
    return None


class Candidates:
    name = "candidates"
    peer_port = PORT
    client_port = PORT

    def __init__(self, recipe: str, ttl: float = 2.0, work_ms: float = 200.0, hold_s: float = 8.0):
        self.recipe, self.ttl, self.work_ms, self.hold_s = recipe, ttl, work_ms, hold_s
        # Known once the service's nodes are up and the harness's resource listens (ElectionCluster.up).
        self.servers: dict[str, str] = {}
        self.resource_url: str | None = None
        # The service's cluster: a partition cuts candidates off from it (nemesis.client_cut).
        self.service = None

    def image_recipe(self) -> ImageRecipe:
        files = (("targets/__init__.py", REPO_ROOT / "targets" / "__init__.py"),) + tuple(
            (dest, src) for dest, src in files_under(REPO_ROOT, "targets/candidates") if Path(dest).name != "plugin.py")
        # The recipes' client libraries: from Debian kazoo for ZooKeeper and redis-py (4.3.4) for Redis (raftkv
        # and etcd speak JSON over HTTP); from PyPI, at build time, pottery for Redlock (Debian has none).
        ca = host_ca_bundle()
        cert = f" --cert {PIP_CA}" if ca else ""
        if ca:
            files += ((PIP_CA, ca),)
        pip = ("python3 -m pip install --no-cache-dir --no-deps --only-binary=:all: --require-hashes "
               f"--break-system-packages --disable-pip-version-check{cert} -r {REQUIREMENTS}")
        return ImageRecipe(name="candidate", files=files,
                           packages=("python3-kazoo", "python3-redis", "python3-typing-extensions", "python3-pip"),
                           env=(("PYTHONDONTWRITEBYTECODE", "1"),), run=(pip,))

    def node_command(self, node_id: str, cluster: ClusterLayout, options: TargetOptions) -> list[str]:
        if not self.servers or not self.resource_url:
            raise RuntimeError("candidates need the service's addresses and the resource's URL before they start")
        servers = ",".join(f"{n}={a}" for n, a in sorted(self.servers.items()))
        return ["python3", "-u", "-m", "targets.candidates.candidate", "--id", node_id, "--recipe", self.recipe,
                "--servers", servers, "--resource", self.resource_url, "--ttl", f"{self.ttl:g}",
                "--work-ms", f"{self.work_ms:g}", "--hold-s", f"{self.hold_s:g}", "--data", cluster.data_dir,
                "--port", str(PORT)]

    def node_environment(self, node_id: str, cluster: ClusterLayout, options: TargetOptions) -> dict[str, str]:
        return {"FAKETIME_DONT_FAKE_MONOTONIC": "1"}

    def clock_control(self) -> str | None:
        return FAKETIME

    def client(self, addresses: dict[str, str], timeout: float = 1.0):
        raise NotImplementedError("candidates are not a workload's target: the harness collects their journals")

    async def status_probe(self, address: str, timeout: float = 0.5) -> dict[str, Any] | None:
        import httpx

        try:
            async with httpx.AsyncClient(timeout=timeout) as http:
                resp = await http.get(f"http://{address}/status")
                return resp.json() if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    # A partition cuts the candidates a grudge leaves without a majority off from the service, so
    # only the grudges that leave some candidate so (see nemesis.client_cut).
    partition_grudges = ("isolate-leader", "isolate-one", "random-halves")

    def unsupported_faults(self, faults) -> list[str]:
        out = []
        for f in faults:
            if f in NETWORK_FAULTS and f != "partition":
                out.append(f"{f}: an election run's nemesis acts on the candidates, and only `partition` (a "
                           "candidate cut off from the coordination service) is built for them")
            elif f == "vote-crash":
                out.append("vote-crash: candidates do not vote")
        return out

    def bugs(self) -> dict[str, str]:
        return {}
