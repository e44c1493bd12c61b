"""The etcd target plugin: Debian's etcd 3.4 as a static cluster, driven and observed over its v3 JSON gateway.

HTTP goes through httpx: etcd is a Go server, which sends any answer over 2 kB
(a set's final range read) chunked, and httpx reads that, keeps connections
alive, and tells a connect that failed (nothing sent: `fail`) from a failure
after sending (`info`) by exception type. What each answer means is in
targets.etcd.gateway; settings in targets.etcd.settings; the whole story in
targets/etcd/README.md.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import httpx

from targets.base import ClusterLayout, Rogue, RoguePlan, TargetOptions
from targets.etcd import gateway
from targets.etcd.settings import EtcdSettings
from targets.image import ImageRecipe
from targets.options import refusals
from targets.prometheus import metrics_counters

HERE = Path(__file__).resolve().parent
PEER_PORT = 2380
CLIENT_PORT = 2379
NODE_SCRIPT = "/opt/splitbrain/etcd/node.sh"  # where image_recipe puts node.sh

# The connect errors of httpx: raised before a byte of the request was sent.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def http_client(timeout: float, connect_timeout: float | None = None) -> httpx.AsyncClient:
    # trust_env=False: an HTTP_PROXY in the environment must not stand between us and the nodes.
    # verify=False: plain HTTP only; it also spares loading the CA bundle (36 ms) per probe.
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, connect_timeout or timeout)),
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        trust_env=False,
        verify=False,
    )


class EtcdClient:
    """Workload operations on etcd members: read/write/cas on registers, add and a range read on a set."""

    def __init__(self, addresses: dict[str, str], timeout: float = 1.0, serializable: bool = False):
        self.addresses = dict(addresses)
        self.timeout = timeout
        self.serializable = serializable
        self._http: httpx.AsyncClient | None = None  # made on first use, in the run's event loop
        self._set_keys: set[str] = set()

    async def invoke(self, node_id: str, op: dict[str, Any]) -> dict[str, Any]:
        if op["f"] == "add":
            self._set_keys.add(str(op.get("key")))
        try:
            req = gateway.build_request(op, self.serializable, frozenset(self._set_keys))
        except ValueError as e:
            return gateway.outcome("fail", None, str(e))
        if self._http is None:
            self._http = http_client(self.timeout, connect_timeout=0.5)
        url = f"http://{self.addresses[node_id]}{req.path}"
        try:
            # httpx's timeouts are per phase (connect, then each read); the harness
            # waits `timeout` for the whole operation, and so do we.
            async with asyncio.timeout(self.timeout):
                resp = await self._http.post(url, json=req.body)
        except NOT_SENT as e:
            return gateway.unsent(f"connect: {type(e).__name__}: {e}"[:200])
        except (httpx.TimeoutException, TimeoutError):
            return gateway.unanswered(req, "timeout")
        except httpx.HTTPError as e:  # reset, EOF, protocol error after sending
            return gateway.unanswered(req, f"{type(e).__name__}: {e}"[:200])
        try:
            doc = resp.json()
        except ValueError:  # the gateway's router answers 404/405 in plain text
            if resp.status_code == 200:
                return gateway.unanswered(req, f"200: unparsable body {resp.text[:100]!r}")
            doc = {}
        return gateway.classify(req, resp.status_code, doc)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


class Etcd:
    """etcd 3.4.23 from Debian bookworm (etcd-server), a static cluster of the run's nodes."""

    name = "etcd"
    peer_port = PEER_PORT
    client_port = CLIENT_PORT

    def __init__(self) -> None:
        # The contract gives settings to node_command only; the client needs the read
        # mode, so the target keeps what its nodes were last started with.
        self.settings = EtcdSettings()
        # member id -> node id (members are named by node id), filled from the member list.
        self.member_names: dict[int, str] = {}

    def image_recipe(self) -> ImageRecipe:
        return ImageRecipe(
            name=self.name,
            files=(("etcd/node.sh", HERE / "node.sh"),),
            packages=("etcd-server", "etcd-client"),  # etcd-client: etcdctl, for debugging inside a node
        )

    def unsupported_options(self, settings: dict[str, Any]) -> list[str]:
        return refusals(EtcdSettings.parse, settings)

    def node_command(self, node_id: str, cluster: ClusterLayout, options: TargetOptions) -> list[str]:
        self.settings = EtcdSettings.parse(options.settings)
        ip = cluster.ip(node_id)
        members = ",".join(f"{n.id}=http://{n.ip}:{cluster.peer_port}" for n in cluster.nodes)
        return [
            "sh", NODE_SCRIPT, cluster.cluster_key_file,
            f"--name={node_id}",
            f"--data-dir={cluster.data_dir}",  # survives a kill: a restart is the same container
            f"--listen-peer-urls=http://{ip}:{cluster.peer_port}",
            f"--initial-advertise-peer-urls=http://{ip}:{cluster.peer_port}",
            f"--listen-client-urls=http://{ip}:{cluster.client_port},http://127.0.0.1:{cluster.client_port}",
            f"--advertise-client-urls=http://{ip}:{cluster.client_port}",
            f"--initial-cluster={members}",
            "--initial-cluster-state=new",
            "--logger=zap",
            "--log-outputs=stderr",
            *self.settings.etcd_flags(),
        ]

    def node_environment(self, node_id: str, cluster: ClusterLayout, options: TargetOptions) -> dict[str, str]:
        return {}

    def clock_control(self) -> str | None:
        return None  # see unsupported_faults

    def client(self, addresses: dict[str, str], timeout: float = 1.0) -> EtcdClient:
        return EtcdClient(addresses, timeout, serializable=self.settings.serializable_reads)

    async def status_probe(self, address: str, timeout: float = 0.5) -> dict[str, Any] | None:
        # /debug/vars, not /v3/maintenance/status: see targets.etcd.gateway on why.
        async with http_client(timeout) as http:
            try:
                resp = await http.get(f"http://{address}/debug/vars")
                status = gateway.raft_status(resp.json()) if resp.status_code == 200 else None
                if status is None:
                    return None
                if any(m is not None and m not in self.member_names for m in gateway.raft_ids(status)):
                    listed = await http.post(f"http://{address}/v3/cluster/member/list", json={})
                    if listed.status_code == 200:
                        self.member_names.update(gateway.member_names(listed.json()))
            except (httpx.HTTPError, ValueError):
                return None
        return gateway.status_view(status, self.member_names)

    async def election_counters(self, address: str, timeout: float = 1.0) -> dict[str, int] | None:
        """WAL fsyncs from the member's /metrics (the election bench reads them before and after an
        election). etcd 3.4 counts peer traffic in bytes only, not messages, so there is no message count."""
        return await metrics_counters(f"http://{address}/metrics",
                                      {"fsyncs": "etcd_disk_wal_fsync_duration_seconds_count"}, timeout)

    def unsupported_faults(self, faults) -> list[str]:
        out = []
        if "clock" in faults:
            out.append("clock: etcd is a Go program, which reads the time through the vDSO, not libc, so "
                       "libfaketime does not reach it, and a time namespace only shifts the monotonic clock "
                       "once, at start; no clock fault can be injected into a running etcd")
        if "vote-crash" in faults:
            out.append("vote-crash: Debian's etcd is built without gofail failpoints, so it cannot crash "
                       "itself right after granting a vote")
        return out

    def data_dir(self, layout: ClusterLayout) -> str:
        """etcd's --data-dir: member/wal (the Raft log, 64 MB segments) and member/snap (snapshots and the
        bbolt database)."""
        return layout.data_dir

    def bugs(self) -> dict[str, str]:
        return {}

    def peer_auth(self) -> str:
        return ("none: members talk plain HTTP (no peer TLS here); a member only refuses messages whose "
                "cluster ID, a hash of --initial-cluster and --initial-cluster-token, is not its own")

    def impostor(self, rogue: Rogue) -> RoguePlan:
        """A fresh etcd member named rogue.claim, listening at the rogue's address.

        Claiming a member's name it advertises that member's peer URL, so its
        --initial-cluster is the members' own, and it starts as etcd does
        when a member comes back with an empty data directory:
        --initial-cluster-state=existing, which takes the cluster ID and the
        member list from the running members and needs no token (a fresh
        start, state new, is refused by etcd: the member "has already been
        bootstrapped"). With a new name it adds itself to --initial-cluster
        and starts new, which gives a cluster ID of its own. Key "wrong" is a
        token of its own, "none" etcd's default, "stolen" the run's. etcd
        cannot be told a term: it starts from an empty log.
        """
        ip, port = rogue.address
        urls = {n: f"http://{h}:{p}" for n, (h, p) in rogue.members.items()}
        urls.setdefault(rogue.claim, f"http://{ip}:{port}")
        flags = [
            f"--name={rogue.claim}",
            "--data-dir=/tmp/rogue-data",
            f"--listen-peer-urls=http://{ip}:{port}",
            f"--initial-advertise-peer-urls={urls[rogue.claim]}",
            f"--listen-client-urls=http://{ip}:{CLIENT_PORT}",
            f"--advertise-client-urls=http://{ip}:{CLIENT_PORT}",
            "--initial-cluster=" + ",".join(f"{n}={u}" for n, u in urls.items()),
            f"--initial-cluster-state={'existing' if rogue.claim in rogue.members else 'new'}",
            "--logger=zap",
            "--log-outputs=stderr",
            *self.settings.etcd_flags(),
        ]
        if rogue.key == "stolen":
            return RoguePlan(["sh", NODE_SCRIPT, rogue.key_file, *flags], None)
        if rogue.key == "wrong":
            flags.append(f"--initial-cluster-token=splitbrain-{secrets.token_hex(8)}")
        return RoguePlan(["etcd", *flags], None)
