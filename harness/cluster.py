"""The Docker cluster backend: one bridge network and N node containers per run, all labelled with the run id.

A run gets a bridge network with a /24 of its own, picked from 10.210.0.0/16
after looking at every existing network (two runs at once try different
subnets and retry on a conflict), and static node addresses in it. Each node
container has NET_ADMIN (the nemesis installs iptables rules inside it), its
cluster key and data directory inside it, and the labels
``splitbrain.run=<run id>`` and ``splitbrain.node=<node id>``, so that
``clean()`` can remove whatever a killed harness left behind.

The node process is the container's main process, so a crash is
``docker kill`` (SIGKILL) and a restart is ``docker start``: the container's
filesystem, and with it the node's data directory, survives.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import ipaddress
import os
import random
import re
import secrets
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import engines, reaper
from harness.images import ImageError, docker_client, ensure_image, ensure_layer
from harness.labels import (  # noqa: F401 (re-exported)
    NODE_LABEL,
    OWNER_LABEL,
    ROGUE_LABEL,
    RUN_LABEL,
    clean,
    owner,
    owner_alive,
)
from targets.base import (
    FAKETIME,
    FAKETIME_CACHE_S,
    ClusterLayout,
    NodeAddress,
    Target,
    TargetOptions,
)

PAUSE_ATTEMPTS = 5  # see DockerCluster.pause

# Where run networks come from; change it if 10.210/16 is in use on your network.
SUBNET_POOL = ipaddress.ip_network(os.environ.get("SPLITBRAIN_SUBNET_POOL", "10.210.0.0/16"))
FIRST_NODE_HOST = 11  # node i gets .(10 + i); .1 is the bridge gateway (the harness)
FIRST_ROGUE_HOST = 200  # impostors (nemesis/impostor.py) from .200 up, well clear of any node
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"  # Debian's libfaketime, in the base image


class ClusterError(Exception):
    """The cluster could not be brought up or driven (an infrastructure error: exit 2)."""


def run_sync(coro):
    """Run a coroutine to completion from sync code, also when called from a thread that runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, coro).result()


def used_subnets(client) -> list[ipaddress.IPv4Network]:
    out = []
    for net in client.api.networks():
        for cfg in (net.get("IPAM") or {}).get("Config") or []:
            try:
                out.append(ipaddress.ip_network(cfg.get("Subnet", ""), strict=False))
            except ValueError:
                continue
    return out


def free_subnets(used: list, rng: random.Random) -> list[ipaddress.IPv4Network]:
    """Every /24 of the pool that overlaps no existing network, in random order."""
    candidates = [s for s in SUBNET_POOL.subnets(new_prefix=24) if not any(s.overlaps(u) for u in used)]
    rng.shuffle(candidates)
    return candidates


def faketime_environment(layout: ClusterLayout) -> dict[str, str]:
    """What the harness sets for a FAKETIME target's node: libfaketime, reading the file the nemesis writes.

    The file is cached for FAKETIME_CACHE_S. Read on every clock call
    (FAKETIME_NO_CACHE) it cost ~125 us a call instead of ~0.1 us
    (bench/faketime_bench.py), a node ~10x slower in CPU even in runs with
    no clock fault; the nemesis waits out the cache after a change instead.
    """
    return {"LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": layout.faketime_file,
            "FAKETIME_CACHE_DURATION": str(FAKETIME_CACHE_S)}


def node_environment(target: Target, node: str, layout: ClusterLayout, options: TargetOptions) -> dict[str, str]:
    """A node's environment: the harness's (faketime_environment for a FAKETIME target), then the target's own."""
    harness = faketime_environment(layout) if target.clock_control() == FAKETIME else {}
    return {**harness, **target.node_environment(node, layout, options)}


def _tar(entries: dict[str, bytes | None], like: tarfile.TarInfo | None = None) -> bytes:
    """A tar of files (bytes) and directories (None), paths relative to /; files get like's mode and owner
    (a member of the file as read), else 0600 and root."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name.lstrip("/"))
            info.mtime = int(time.time())
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o600
                if like is not None:
                    info.mode, info.uid, info.gid = like.mode, like.uid, like.gid
                    info.uname, info.gname = like.uname, like.gname
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class DockerCluster:
    """N nodes of one target in containers on a private bridge network; see the module docstring.
    It is the nemesis's `nemesis.family.ClusterControl` for Docker."""

    netns = True  # each container has its own network namespace: iptables and tc per node
    node_layers = True  # it gives each node the NodeLayers of the run's fault families (`layers`)

    def __init__(
        self,
        run_id: str,
        target: Target,
        nodes: int,
        options: TargetOptions | None = None,
        log: Callable[[str], None] = print,
        rebuild_images: bool = False,
        join: DockerCluster | None = None,
        node_prefix: str = "n",
        layers: tuple = (),
        placement: dict[str, str] | None = None,
    ):
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        if placement and join is not None:
            raise ValueError("a joined group of nodes lives on its group's engine: no placement")
        self.run_id = run_id
        self.target = target
        self.options = options or TargetOptions()
        self.log = log
        self.rebuild_images = rebuild_images
        # nemesis.family.NodeLayer of the run's faults (nemesis.registry.node_layers): image, devices, wrapper.
        self.layers = tuple(layers)
        self.node_ids: list[str] = [f"{node_prefix}{i}" for i in range(1, nodes + 1)]
        # node -> Docker engine name (harness/engines.py); the first engine used is the home engine: it
        # builds the images and holds whatever is not a node (impostors, helpers of paused nodes' peers).
        self.placement: dict[str, str] = engines.place(self.node_ids, explicit=placement)
        self.engine_names: list[str] = engines.engines_in(self.placement)
        self._engines: dict[str, Any] = {}  # engine name -> client, connected on first use
        self._networks: dict[str, Any] = {}  # engine name -> the run's network there
        self.subnets: dict[str, ipaddress.IPv4Network] = {}  # engine name -> that network's subnet
        self._forwarding_open = False  # this run opened the host's forwarding between its subnets
        self.ips: dict[str, str] = {}
        self.layout: ClusterLayout | None = None
        # Another group of nodes of the same run on `join`'s network (an election run's candidates beside the
        # service's nodes): its addresses follow join's, and its teardown removes only its own containers.
        self.join = join
        self.network_name = join.network_name if join is not None else f"splitbrain-{run_id}"
        self.image: str | None = None
        self._client = None
        self._containers: dict[str, Any] = {}
        self._read_meta: dict[tuple[str, str], tarfile.TarInfo] = {}  # read_file's members: write_file keeps them
        self._network = None
        self._torn_down = False
        self._teardown_lock = threading.Lock()
        self._reaper: reaper.Reaper | None = None  # removes the run if this process dies before teardown
        # Rogue members of the impostor fault: name -> container, and their addresses (kept after removal,
        # so a name gets the same address again); logs of removed ones, for copy_logs.
        self._rogues: dict[str, Any] = {}
        self._rogue_ips: dict[str, str] = {}
        self._rogue_logs: list[tuple[str, str]] = []

    # ---- addresses -------------------------------------------------------

    @property
    def addresses(self) -> dict[str, str]:
        """node id -> "ip:port" of its client API."""
        return {n: f"{ip}:{self.target.client_port}" for n, ip in self.ips.items()}

    @property
    def client(self):
        """The home engine's client (the only engine unless nodes are placed on several)."""
        if self._client is None:
            home = self.engine_names[0]
            self._client = docker_client() if home == engines.DEFAULT else self._connect(home)
        return self._client

    def engine(self, name: str):
        """The client of engine `name` (one of this cluster's), connected once; ClusterError if unreachable."""
        if name == self.engine_names[0]:
            return self.client
        if name not in self._engines:
            self._engines[name] = self._connect(name)
        return self._engines[name]

    @staticmethod
    def _connect(name: str):
        try:
            return engines.connect(name)
        except engines.EngineError as e:
            raise ClusterError(str(e)) from None

    def client_of(self, node: str):
        """The client of the engine the node runs on."""
        return self.engine(self.placement.get(node, self.engine_names[0]))

    @property
    def multi_engine(self) -> bool:
        return len(self.engine_names) > 1

    def labels(self, node: str | None = None) -> dict[str, str]:
        lab = {RUN_LABEL: self.run_id, OWNER_LABEL: owner()}
        if node:
            lab[NODE_LABEL] = node
        return lab

    # ---- bring-up --------------------------------------------------------

    def up(self, timeout: float = 30) -> dict[str, str]:
        """Build missing images, create the network and the nodes, wait until every node answers. node -> ip.

        Raises ClusterError (an infrastructure error) for anything that goes wrong.
        """
        import docker

        try:
            return self._up(timeout)
        except docker.errors.DockerException as e:
            if self._torn_down:
                raise ClusterError(f"cluster {self.run_id} was torn down while coming up") from None
            raise ClusterError(f"cluster {self.run_id}: Docker refused: {str(e).splitlines()[0][:300]}") from None

    def _up(self, timeout: float) -> dict[str, str]:
        try:
            self.image = ensure_image(self.target.image_recipe(), rebuild=self.rebuild_images, progress=self.log,
                                      client=self.client)
            for layer in self.layers:
                self.image = ensure_layer(self.image, layer.image, rebuild=self.rebuild_images, progress=self.log,
                                          client=self.client)
        except ImageError as e:
            raise ClusterError(str(e)) from None
        for name in self.engine_names[1:]:
            try:
                engines.distribute_image(self.image, self.client, self.engine(name), self.log, name)
            except engines.EngineError as e:
                raise ClusterError(str(e)) from None
        # The nodes' time starts once their image exists: a build (a minute for the candidate image's pip
        # step) used to eat the whole timeout, and the first run after an edit failed with empty logs.
        started = time.monotonic()
        if self.join is None:
            # One reaper per run: a joined group carries the same run id, so its nodes are covered too.
            if self._reaper is None:
                self._reaper = reaper.start(self.run_id, engines=self.engine_names)
            self._create_network()
        else:
            self.subnet = self.join.subnet
            first = FIRST_NODE_HOST + len(self.join.node_ids)
            for i, n in enumerate(self.node_ids):
                self.ips[n] = str(self.subnet.network_address + first + i)
        self.layout = ClusterLayout(
            nodes=tuple(NodeAddress(n, self.ips[n]) for n in self.node_ids),
            peer_port=self.target.peer_port,
            client_port=self.target.client_port,
        )
        key = secrets.token_hex(32).encode() + b"\n"
        self._key = key  # for an impostor started with the run's key (start_rogue with_key)
        self._parallel(lambda n: self._create_node(n, key), self.node_ids)
        self._check_not_torn_down()
        self._parallel(lambda n: self._containers[n].start(), self.node_ids)
        remaining = max(1.0, timeout - (time.monotonic() - started))
        missing = self.wait_serving(self.node_ids, remaining)
        if missing:
            tails = {n: self.node_log(n)[-300:].strip().replace("\n", " | ") for n in missing}
            states = self.states()
            raise ClusterError(
                f"nodes {', '.join(f'{n} ({states[n]})' for n in missing)} did not answer their status probe "
                f"within {time.monotonic() - started:.0f}s; "
                + "; ".join(f"{n} log: {t or '(empty)'}" for n, t in tails.items())
            )
        if self.multi_engine:
            self._check_routes()
        where = (", ".join(f"{e or 'default'} {self.subnets[e]}" for e in self.engine_names) if self.multi_engine
                 else str(self.subnet))
        self.log(f"cluster {self.run_id}: {len(self.node_ids)} nodes serving on {where} "
                 f"in {time.monotonic() - started:.1f}s")
        return dict(self.ips)

    def _create_network(self) -> None:
        """The run's bridge network on every engine it uses, each a /24 that no engine has yet."""
        rng = random.Random(f"{self.run_id}:{os.getpid()}:{time.time_ns()}")
        for name in self.engine_names:
            self._create_network_on(name, rng)
        home = self.engine_names[0]
        self._network, self.subnet = self._networks[home], self.subnets[home]
        for i, n in enumerate(self.node_ids):
            # The index across the whole cluster: node i is .(10 + i) whichever engine's subnet it is in.
            self.ips[n] = str(self.subnets[self.placement[n]].network_address + FIRST_NODE_HOST + i)
        if self.multi_engine and all(engines.is_local(e) for e in self.engine_names):
            # Engines on this machine: the kernel routes between their bridges, but Docker's FORWARD
            # policy drops what no engine published and masquerades what leaves a bridge, so open
            # exactly this run's subnets to each other (removed at teardown, or by the reaper).
            try:
                engines.open_forwarding(self.run_id, [str(n) for n in self.subnets.values()])
                self._forwarding_open = True
            except engines.EngineError as e:
                raise ClusterError(str(e)) from None

    def _create_network_on(self, name: str, rng: random.Random) -> None:
        import docker

        client = self.engine(name)
        for _attempt in range(20):
            used = [net for e in self.engine_names for net in used_subnets(self.engine(e))]
            candidates = free_subnets(used + list(self.subnets.values()), rng)
            if not candidates:
                raise ClusterError(f"no free /24 left in {SUBNET_POOL} for the run's network; run `splitbrain clean`")
            subnet = candidates[0]
            hosts = list(subnet.hosts())
            ipam = docker.types.IPAMConfig(
                pool_configs=[docker.types.IPAMPool(subnet=str(subnet), gateway=str(hosts[0]))]
            )
            try:
                network = client.networks.create(
                    self.network_name, driver="bridge", ipam=ipam, labels=self.labels(), check_duplicate=True
                )
            except docker.errors.APIError as e:
                # Another run took this subnet between our look and our create: try another.
                if "overlap" in str(e).lower() or "already" in str(e).lower():
                    time.sleep(rng.random() * 0.2)
                    continue
                raise ClusterError(f"cannot create network {self.network_name}"
                                   f"{f' on engine {name}' if name else ''}: {e}") from None
            self._networks[name], self.subnets[name] = network, subnet
            self._check_not_torn_down(network)
            return
        raise ClusterError("could not find a free subnet for the run's network after 20 attempts")

    def _check_routes(self) -> None:
        """Each engine's first node reaches a node on every other engine (its client port), or ClusterError
        naming the pair: nodes that cannot reach each other would only look like a permanent partition."""
        first = {e: next(n for n in self.node_ids if self.placement[n] == e) for e in self.engine_names}
        port = self.target.client_port
        for src_engine, src in first.items():
            for dst_engine, dst in first.items():
                if dst_engine == src_engine:
                    continue
                rc, _ = self.exec(src, ["nc", "-z", "-w", "2", self.ips[dst], str(port)])
                if rc != 0:
                    raise ClusterError(
                        f"node {src} on engine {src_engine or 'default'} cannot reach {dst} on engine "
                        f"{dst_engine or 'default'} at {self.ips[dst]}:{port}: the engines' run networks are not "
                        "routed to each other (docs/multi-host.md says what each host needs)")

    def _create_node(self, node: str, key: bytes) -> None:
        client = self.client_of(node)
        api = client.api
        assert self.layout is not None
        env = node_environment(self.target, node, self.layout, self.options)
        command = self.target.node_command(node, self.layout, self.options)
        caps, devices = ["NET_ADMIN"], []
        for layer in self.layers:
            caps += [c for c in layer.cap_add if c not in caps]
            devices += [f"{d}:{d}:rwm" for d in layer.devices]
            if layer.wrap is not None:
                command = layer.wrap(list(command), self.layout)
        host_config = api.create_host_config(cap_add=caps, devices=devices or None, init=False)
        networking = api.create_networking_config(
            {self.network_name: api.create_endpoint_config(ipv4_address=self.ips[node])}
        )
        created = api.create_container(
            self.image,
            command=command,
            name=f"splitbrain-{self.run_id}-{node}",
            hostname=node,
            environment=env,
            labels=self.labels(node),
            host_config=host_config,
            networking_config=networking,
        )
        container = client.containers.get(created["Id"])
        files: dict[str, bytes | None] = {
            os.path.dirname(self.layout.cluster_key_file): None,
            self.layout.data_dir: None,
            self.layout.cluster_key_file: key,
        }
        if self.target.clock_control() == FAKETIME:
            files[self.layout.faketime_file] = b"+0\n"
        container.put_archive("/", _tar(files))
        self._containers[node] = container
        self._check_not_torn_down(container)

    def wait_serving(self, nodes: list[str], timeout: float) -> list[str]:
        """Wait until every node answers its status probe; the nodes that still do not, [] on success."""
        async def wait() -> list[str]:
            deadline = time.monotonic() + timeout
            pending = list(nodes)
            rounds = 0
            while pending and time.monotonic() < deadline:
                answers = await asyncio.gather(*(self.target.status_probe(self.addresses[n], 0.5) for n in pending))
                pending = [n for n, a in zip(pending, answers, strict=True) if a is None]
                rounds += 1
                if pending and rounds % 5 == 0:
                    # A node whose process exited will never answer: say so now, not at the timeout.
                    states = await asyncio.to_thread(self.states)
                    if any(states.get(n) in ("exited", "dead") for n in pending):
                        return pending
                if pending:
                    await asyncio.sleep(0.1)
            return pending

        return run_sync(wait())

    def probe(self, node: str, timeout: float = 0.5) -> dict | None:
        """What the node believes right now (the target's status probe), None when it does not answer."""
        return run_sync(self.target.status_probe(self.addresses[node], timeout))

    def probe_all(self, timeout: float = 0.5) -> dict[str, dict | None]:
        return self.probe_some(self.node_ids, timeout)

    def probe_some(self, nodes: list[str], timeout: float = 0.5) -> dict[str, dict | None]:
        """Status probes of several nodes at once."""
        async def some():
            answers = await asyncio.gather(*(self.target.status_probe(self.addresses[n], timeout)
                                             for n in nodes))
            return dict(zip(nodes, answers, strict=True))

        return run_sync(some()) if nodes else {}

    # ---- node control ----------------------------------------------------

    def container(self, node: str):
        try:
            return self._containers[node]
        except KeyError:
            raise ClusterError(f"no such node {node!r} (nodes: {', '.join(self.node_ids)})") from None

    def states(self) -> dict[str, str]:
        """Docker's state of every node's container, asked in one call."""
        # The low-level list: one call, and no per-container inspect that could
        # race a concurrent removal.
        found = {(c.get("Labels") or {}).get(NODE_LABEL): c.get("State") for c in self._listed()}
        return {n: found.get(n, "missing") for n in self.node_ids}

    def _listed(self) -> list[dict]:
        """This run's containers as Docker's list call gives them (labels, state, status line)."""
        selector = {"label": f"{RUN_LABEL}={self.run_id}"}
        return [c for e in self.engine_names for c in self.engine(e).api.containers(all=True, filters=selector)]

    def exit_codes(self) -> dict[str, int | None]:
        """Exit status of every node whose container has exited; None for the others (one call)."""
        out: dict[str, int | None] = {n: None for n in self.node_ids}
        for c in self._listed():
            node = (c.get("Labels") or {}).get(NODE_LABEL)
            # The list gives "Exited (86) 2 seconds ago"; inspecting each container would cost a call each.
            m = re.match(r"Exited \((-?\d+)\)", c.get("Status") or "")
            if node in out and c.get("State") in ("exited", "dead") and m:
                out[node] = int(m.group(1))
        return out

    def state(self, node: str) -> str:
        """Docker's state of the node's container: running, paused, exited, ..."""
        c = self.container(node)
        c.reload()
        return c.status

    def kill(self, node: str) -> None:
        """SIGKILL the node's process (its container's main process); the disk stays."""
        import docker.errors

        c = self.container(node)
        try:
            c.kill(signal="SIGKILL")
        except docker.errors.APIError as e:
            # It exited by itself between our look and the kill (a crash at a
            # failpoint, say): what the kill was for has happened.
            if e.status_code != 409 or "is not running" not in str(e):
                raise
        c.wait(timeout=10)

    def signal(self, node: str, sig: str) -> None:
        """Send sig to the node's process (its container's PID 1) from outside, where SIGSTOP reaches it."""
        self.container(node).kill(signal=sig)

    def start(self, node: str) -> None:
        """Start a killed node again with its disk intact."""
        self.container(node).start()

    def pause(self, node: str) -> None:
        # The cgroup freezer gives up ("unable to freeze") when a task sits in
        # uninterruptible sleep, e.g. inside an fsync; that passes in moments,
        # so try again a few times before calling it an infrastructure error.
        import docker.errors

        for attempt in range(PAUSE_ATTEMPTS):
            try:
                self.container(node).pause()
                return
            except docker.errors.APIError as e:
                if "freeze" not in str(e) or attempt == PAUSE_ATTEMPTS - 1:
                    raise
                if self.state(node) == "paused":
                    return
                time.sleep(0.2 * (attempt + 1))

    def resume(self, node: str) -> None:
        self.container(node).unpause()

    def exec(self, node: str, cmd: list[str], timeout: float | None = None) -> tuple[int, str]:
        """Run cmd inside the node's container; (exit code, stdout+stderr)."""
        if timeout is not None:
            cmd = ["timeout", "-s", "KILL", f"{timeout:g}", *cmd]
        res = self.container(node).exec_run(cmd, stdout=True, stderr=True)
        return res.exit_code, (res.output or b"").decode("utf-8", "replace")

    def exec_netns(self, node: str, cmd: list[str]) -> tuple[int, str]:
        """Run cmd in the node's network namespace, also while the node is paused.

        A paused container refuses `docker exec`, so for one a short-lived
        helper container (same image, NET_ADMIN, labelled with the run) joins
        its network namespace instead.
        """
        import docker

        try:
            return self.exec(node, cmd)
        except docker.errors.APIError as e:
            if "paused" not in str(e).lower():
                raise
        try:
            out = self.client_of(node).containers.run(
                self.image, cmd, network_mode=f"container:{self.container(node).id}", cap_add=["NET_ADMIN"],
                remove=True, labels=self.labels(), stdout=True, stderr=True,
            )
            return 0, out.decode("utf-8", "replace")
        except docker.errors.ContainerError as e:
            return e.exit_status, (e.stderr or b"").decode("utf-8", "replace")

    def put_file(self, node: str, path: str, data: bytes) -> None:
        """Write a file inside the node's container atomically (tar to a temp name, then rename)."""
        tmp = f"{path}.splitbrain-tmp"
        self.container(node).put_archive("/", _tar({tmp: data}))
        rc, out = self.exec(node, ["mv", "-f", tmp, path])
        if rc != 0:
            raise ClusterError(f"{node}: cannot move {tmp} to {path}: {out.strip()}")

    def write_file(self, node: str, path: str, data: bytes) -> None:
        """Write a file in place inside a node that is paused or down (nothing reads it mid-write); a file
        read with read_file keeps its mode and owner."""
        self.container(node).put_archive("/", _tar({path: data}, like=self._read_meta.get((node, path))))

    def read_file(self, node: str, path: str) -> bytes | None:
        """A file's bytes from the node's container, also while it is down; None if there is no such file."""
        import docker.errors

        try:
            stream, _ = self.container(node).get_archive(path)
        except docker.errors.NotFound:
            return None
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            if member is None or not member.isfile():
                return None
            self._read_meta[(node, path)] = member
            return tar.extractfile(member).read()

    def exec_detached(self, node: str, cmd: list[str]) -> None:
        """Start cmd inside the node's container in the background (a clock strobe's loop)."""
        self.container(node).exec_run(cmd, detach=True)

    def set_failpoint(self, node: str, name: str, on: bool) -> bool:
        """Arm or disarm one of the target's failpoints on node; whether the node agreed."""
        return run_sync(self.target.set_failpoint(self.addresses[node], name, on))

    def membership(self, node: str, action: str = "show", member: str | None = None,
                   timeout: float = 2.0) -> tuple[int | None, dict]:
        """The target's membership admin API on node (Target.membership): (status, body), None if no answer."""
        return run_sync(self.target.membership(self.addresses[node], action, member, timeout))

    # ---- rogue members (the impostor fault) --------------------------------

    def peer_address(self, node: str) -> tuple[str, int]:
        return self.ips[node], self.target.peer_port

    def rogue_address(self, name: str) -> tuple[str, int]:
        """Where a rogue called name will listen: an address of the run's network that no node has."""
        if name not in self._rogue_ips:
            self._rogue_ips[name] = str(self.subnet.network_address + FIRST_ROGUE_HOST + len(self._rogue_ips))
        return self._rogue_ips[name], self.target.peer_port

    def rogue_key_path(self) -> str:
        return self.layout.cluster_key_file

    def start_rogue(self, name: str, command: list[str], with_key: bool = False) -> None:
        """Start a container of the target's image on the run's network at rogue_address(name), running
        command (with the run's cluster key at rogue_key_path() if with_key); labelled with the run, so
        teardown, the reaper and `clean` remove it with the nodes."""
        api = self.client.api
        ip, _ = self.rogue_address(name)
        networking = api.create_networking_config(
            {self.network_name: api.create_endpoint_config(ipv4_address=ip)})
        created = api.create_container(
            self.image, command=command, name=f"splitbrain-{self.run_id}-rogue-{name}", hostname=f"rogue-{name}",
            labels={**self.labels(), ROGUE_LABEL: name}, host_config=api.create_host_config(init=False),
            networking_config=networking)
        container = self.client.containers.get(created["Id"])
        self._rogues[name] = container
        self._check_not_torn_down(container)
        if with_key:
            path = self.layout.cluster_key_file
            container.put_archive("/", _tar({os.path.dirname(path): None, path: self._key}))
        container.start()

    def rogue_state(self, name: str) -> str:
        """running, exited, ... or missing (never started, or removed)."""
        import docker.errors

        c = self._rogues.get(name)
        if c is None:
            return "missing"
        try:
            c.reload()
        except docker.errors.NotFound:
            return "missing"
        return c.status

    def rogue_exec(self, name: str, cmd: list[str]) -> tuple[int, str]:
        """Run cmd inside the rogue's container (its network's view); (exit code, output)."""
        res = self._rogues[name].exec_run(cmd, stdout=True, stderr=True)
        return res.exit_code, (res.output or b"").decode("utf-8", "replace")

    def rogue_log(self, name: str) -> str:
        c = self._rogues.get(name)
        return self.rogue_log_of(c) if c is not None else ""

    def remove_rogue(self, name: str) -> None:
        """Remove the rogue's container (its log is kept for copy_logs); nothing if there is none."""
        import docker.errors

        c = self._rogues.pop(name, None)
        if c is None:
            return
        self._rogue_logs.append((name, self.rogue_log_of(c)))
        try:
            c.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass

    @staticmethod
    def rogue_log_of(container) -> str:
        try:
            return container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        except Exception as e:
            return f"(no log: {e})"

    def node_log(self, node: str) -> str:
        try:
            return self.container(node).logs(stdout=True, stderr=True).decode("utf-8", "replace")
        except Exception as e:
            return f"(no log: {e})"

    def copy_logs(self, dest_dir: str | Path) -> list[Path]:
        """Write each node's log (stdout+stderr, across restarts) to dest_dir/<node>.log."""
        dest = Path(dest_dir)
        dest.mkdir(parents=True, exist_ok=True)
        written = []
        for n in list(self._containers):
            p = dest / f"{n}.log"
            p.write_text(self.node_log(n))
            written.append(p)
        # Impostors: the removed ones' logs as kept, then any still running.
        rogues = self._rogue_logs + [(n, self.rogue_log_of(c)) for n, c in self._rogues.items()]
        for i, (name, text) in enumerate(rogues, start=1):
            p = dest / f"rogue-{name}-{i}.log"
            p.write_text(text)
            written.append(p)
        return written

    # ---- teardown --------------------------------------------------------

    def teardown(self) -> None:
        """Remove every container and the network of this run (found by label too). Idempotent."""
        with self._teardown_lock:
            if self._torn_down:
                return
            self._torn_down = True
        # A fresh client: teardown may run from a signal handler that interrupted
        # a request on the cluster's own connection.
        if self.join is None:
            for name in self.engine_names:
                # The home engine's first: a remote one that cannot be reached must not keep this host's
                # containers alive.
                try:
                    client = docker_client() if name == engines.DEFAULT else engines.connect(name)
                    clean(self.run_id, client=client)
                except engines.EngineError as e:
                    self.log(f"cluster {self.run_id}: could not clean engine {name}: {e}; "
                             f"run `splitbrain clean --docker-hosts {name}` when it is back")
            if self._forwarding_open:
                engines.close_forwarding(self.run_id)
        else:
            import docker

            client = docker_client()
            for c in [*self._containers.values(), *self._rogues.values()]:
                try:
                    client.api.remove_container(c.id, force=True, v=True)
                except docker.errors.NotFound:
                    pass
        self._containers.clear()
        self._rogues.clear()
        if self._reaper is not None:
            self._reaper.disarm()

    def _check_not_torn_down(self, created=None) -> None:
        """Teardown (e.g. from a signal handler) raced with up(): remove what was just made, stop."""
        if self._torn_down:
            if created is not None:
                try:
                    if hasattr(created, "containers"):  # a network: remove() takes no force
                        created.remove()
                    else:
                        created.remove(force=True)
                except Exception:
                    pass
            raise ClusterError(f"cluster {self.run_id} was torn down while coming up")

    def _parallel(self, fn, items) -> list:
        with concurrent.futures.ThreadPoolExecutor(max(1, len(items))) as ex:
            return list(ex.map(fn, items))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.teardown()
