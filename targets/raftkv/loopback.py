"""Start, probe and stop a local raftkv cluster of real processes on 127.0.0.1 (no third-party packages).

Used by the loopback cluster tests, the benchmark (bench/raftkv_bench.py) and
the demo (targets/raftkv/demo.py). Always use it as a context manager, or call
``stop_all`` in a finally block: it owns the node processes it starts.

``LocalCluster`` is also a ``nemesis.family.ClusterControl`` (structurally: a
target does not import the nemesis), so the process and clock fault families
drive it as they drive Docker containers: kill is SIGKILL, pause SIGSTOP,
resume SIGCONT, and the layout's files (``ClusterLayout.clock_file``, ...) map
to each node's own files here. The nodes share the host's network, so it has
no per-node network namespace (``netns = False``): the network families are
refused before a run, and ``exec``/``exec_netns`` raise.

A tool, not part of a node: it stays out of the node image. It works from a
checkout and from an installed splitbrain alike, since each node runs
``python -m targets.raftkv`` with this package's own root first on its path.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

from targets.base import ClusterLayout, NodeAddress

# The folder that holds the `targets` package (a checkout, or site-packages).
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def free_ports(n: int) -> list[int]:
    """n distinct ports the kernel just handed out (free now, very likely free a moment later)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _stopped(pid: int, otherwise: bool) -> bool:
    """Whether the process is stopped by a signal, as the kernel says (Linux's /proc); `otherwise` elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return otherwise
    return stat.rpartition(")")[2].split()[0] in ("T", "t")


def speak_to_peer_port(port: int, key: bytes, sender: str, dst: str, msgs: list[dict],
                       raw: bytes | None = None, timeout: float = 2.0) -> bool:
    """Dial a node's peer port as a peer holding `key` would (read its challenge, say hello as
    `sender`, send msgs), or send `raw` bytes instead; True if the node then hung up within `timeout`."""
    from targets.raftkv.transport import CHALLENGE_BYTES, MAGIC, dialer_bytes

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        greeting = b""
        while len(greeting) < len(MAGIC) + CHALLENGE_BYTES:
            chunk = s.recv(len(MAGIC) + CHALLENGE_BYTES - len(greeting))
            if not chunk:
                return True
            greeting += chunk
        data = raw if raw is not None else dialer_bytes(key, greeting[len(MAGIC):], sender, dst, msgs)
        try:
            s.sendall(data)
            return s.recv(1) == b""
        except ConnectionError:  # reset: it hung up before reading all we sent
            return True
        except TimeoutError:
            return False


class NodeClient:
    """A keep-alive HTTP/1.1 connection to one node's client API."""

    def __init__(self, port: int, timeout: float = 5.0):
        self.port = port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
        """(status, parsed body). Raises OSError / http.client errors when the node is unreachable."""
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        data = None if body is None else json.dumps(body)
        headers = {} if body is None else {"Content-Type": "application/json"}
        try:
            self._conn.request(method, path, body=data, headers=headers)
            resp = self._conn.getresponse()
            raw = resp.read()
        except Exception:
            self.close()  # never reuse a connection in an unknown state
            raise
        ctype = resp.getheader("Content-Type", "")
        return resp.status, (json.loads(raw) if ctype.startswith("application/json") else raw.decode())

    def get(self, key: str):
        return self.request("GET", "/kv/" + quote(key, safe=""))

    def put(self, key: str, value, request_id: str | None = None):
        body = {"value": value} if request_id is None else {"value": value, "request_id": request_id}
        return self.request("PUT", "/kv/" + quote(key, safe=""), body)

    def cas(self, key: str, old, new, request_id: str | None = None):
        body = {"from": old, "to": new}
        if request_id is not None:
            body["request_id"] = request_id
        return self.request("POST", "/kv/" + quote(key, safe="") + "/cas", body)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class LocalCluster:
    """n raftkv processes on 127.0.0.1, each with its own ports, data dir, clock file and log under one folder."""

    module = "targets.raftkv"  # the node program (`python -m`); targets.paxoskv runs the same way
    netns = False  # one network for every node: no iptables or tc per node
    node_layers = False  # local processes: no container to give a fault family's image layer or device

    def __init__(self, n: int = 3, base_dir: str | None = None, election_timeout: str = "150-300",
                 heartbeat: int = 50, extra_args: tuple[str, ...] = (), fsync: bool = True):
        self.ids = [f"n{i}" for i in range(1, n + 1)]
        self.node_ids = self.ids  # the ClusterControl's name for them
        self.ips = {i: "127.0.0.1" for i in self.ids}
        # The files a node has, as a container would name them (put_file maps them to this node's own);
        # the ports are per node here (peer_ports, client_ports), so the layout's are 0.
        self.layout = ClusterLayout(tuple(NodeAddress(i, "127.0.0.1") for i in self.ids), peer_port=0, client_port=0)
        self._paused: set[str] = set()
        self._tmp = None
        if base_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="raftkv-cluster-")
            base_dir = self._tmp.name
        self.base = Path(base_dir)
        ports = free_ports(2 * n)
        self.peer_ports = dict(zip(self.ids, ports[:n], strict=True))
        self.client_ports = dict(zip(self.ids, ports[n:], strict=True))
        self.key_file = self.base / "cluster.key"
        self.key_file.write_text(secrets.token_hex(32) + "\n")
        self.election_timeout = election_timeout
        self.heartbeat = heartbeat
        self.extra_args = tuple(extra_args)
        self.fsync = fsync
        self.procs: dict[str, subprocess.Popen] = {}
        self._last_writer: str | None = None
        self.rogues: dict[str, subprocess.Popen] = {}  # impostors (nemesis/impostor.py), by name
        self._rogue_ports: dict[str, int] = {}

    # -- processes -------------------------------------------------------------

    def data_dir(self, node_id: str) -> Path:
        return self.base / node_id

    def log_path(self, node_id: str) -> Path:
        return self.base / f"{node_id}.log"

    def clock_file(self, node_id: str) -> Path:
        return self.base / f"{node_id}.clock.json"

    def command(self, node_id: str) -> list[str]:
        peers = ",".join(f"{i}=127.0.0.1:{p}" for i, p in self.peer_ports.items())
        cmd = [sys.executable, "-m", self.module, "--id", node_id, "--peers", peers,
               "--client", f"127.0.0.1:{self.client_ports[node_id]}",
               "--data", str(self.data_dir(node_id)), "--cluster-key-file", str(self.key_file),
               "--election-timeout", self.election_timeout, "--heartbeat", str(self.heartbeat),
               "--clock-file", str(self.clock_file(node_id)), *self.extra_args]
        if not self.fsync:
            cmd.append("--no-fsync")
        return cmd

    def _spawn(self, cmd: list[str], log_path: Path) -> subprocess.Popen:
        env = {**os.environ,
               "PYTHONPATH": os.pathsep.join(filter(None, (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH"))))}
        with open(log_path, "ab") as logf:
            return subprocess.Popen(cmd, cwd=self.base, env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=logf)

    def start(self, node_id: str) -> None:
        assert node_id not in self.procs or self.procs[node_id].poll() is not None, node_id
        self._paused.discard(node_id)
        self.procs[node_id] = self._spawn(self.command(node_id), self.log_path(node_id))

    def start_all(self, wait: float = 10.0) -> None:
        for node_id in self.ids:
            self.start(node_id)
        for node_id in self.ids:
            self.wait_until_serving(node_id, wait)

    def wait_until_serving(self, node_id: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[node_id]
            if proc.poll() is not None:
                raise RuntimeError(f"{node_id} exited with {proc.returncode}: {self.log_tail(node_id)}")
            if self.status(node_id) is not None:
                return
            time.sleep(0.02)
        raise TimeoutError(f"{node_id} did not serve within {timeout}s: {self.log_tail(node_id)}")

    def kill(self, node_id: str, sig: int = signal.SIGKILL) -> None:
        """Signal the node (SIGKILL: also a stopped one) and return once it is gone; the disk stays."""
        proc = self.procs.get(node_id)
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(10)
        self._paused.discard(node_id)

    def pause(self, node_id: str) -> None:
        """SIGSTOP: the process freezes, its sockets stay open and nothing answers (like a frozen container).
        Returns once the kernel says it is stopped."""
        self.procs[node_id].send_signal(signal.SIGSTOP)
        self._paused.add(node_id)
        self._settle(node_id, "paused")

    def resume(self, node_id: str) -> None:
        self.procs[node_id].send_signal(signal.SIGCONT)
        self._paused.discard(node_id)
        self._settle(node_id, "running")

    def _settle(self, node_id: str, state: str, timeout: float = 2.0) -> None:
        # A signal is delivered when the process is next scheduled: wait for it, so the caller sees the new state.
        deadline = time.monotonic() + timeout
        while self.state(node_id) not in (state, "exited") and time.monotonic() < deadline:
            time.sleep(0.005)

    def alive(self) -> list[str]:
        return [i for i, p in self.procs.items() if p.poll() is None]

    def stop_all(self) -> None:
        """SIGTERM every node still running, SIGKILL any that do not exit within 5 s; remove every rogue."""
        for name in list(self.rogues):
            self.remove_rogue(name)
        for node_id, proc in self.procs.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                if node_id in self._paused:
                    proc.send_signal(signal.SIGCONT)  # a stopped process acts on SIGTERM only once it runs
        deadline = time.monotonic() + 5
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def close(self) -> None:
        try:
            self.stop_all()
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the nemesis's ClusterControl ---------------------------------------------

    def state(self, node_id: str) -> str:
        """running, paused (stopped by a signal), exited, or missing (never started)."""
        proc = self.procs.get(node_id)
        if proc is None:
            return "missing"
        if proc.poll() is not None:
            return "exited"
        return "paused" if _stopped(proc.pid, node_id in self._paused) else "running"

    def states(self) -> dict[str, str]:
        return {i: self.state(i) for i in self.ids}

    def exit_codes(self) -> dict[str, int | None]:
        """Each exited node's status as a container reports it (a signal N is 128+N); None while it runs."""
        out: dict[str, int | None] = {i: None for i in self.ids}
        for i, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                out[i] = code if code >= 0 else 128 - code
        return out

    def probe(self, node_id: str, timeout: float = 0.5) -> dict | None:
        return self.status(node_id, timeout)

    def probe_some(self, nodes: list[str], timeout: float = 0.5) -> dict[str, dict | None]:
        """Status probes of several nodes at once (a paused node costs its timeout, not the others')."""
        if not nodes:
            return {}
        with ThreadPoolExecutor(len(nodes)) as pool:
            return dict(zip(nodes, pool.map(lambda i: self.status(i, timeout), nodes), strict=True))

    def probe_all(self, timeout: float = 0.5) -> dict[str, dict | None]:
        return self.probe_some(self.ids, timeout)

    def wait_serving(self, nodes: list[str], timeout: float) -> list[str]:
        """Wait until every node answers /status; those still silent ([] on success), early if one exited."""
        deadline = time.monotonic() + timeout
        pending = list(nodes)
        while pending and time.monotonic() < deadline:
            answers = self.probe_some(pending, 0.5)
            pending = [i for i in pending if answers[i] is None]
            if any(self.state(i) == "exited" for i in pending):
                break  # it will never answer: say so now, not at the timeout
            if pending:
                time.sleep(0.05)
        return pending

    def membership(self, node_id: str, action: str = "show", member: str | None = None,
                   timeout: float = 2.0) -> tuple[int | None, dict]:
        """GET /membership (action "show") or POST /membership/ACTION/MEMBER; (None, {}) if no answer."""
        c = self.client(node_id, timeout)
        try:
            if action == "show":
                code, body = c.request("GET", "/membership")
            else:
                code, body = c.request("POST", f"/membership/{quote(action)}/{quote(member or '', safe='')}")
            return code, body if isinstance(body, dict) else {}
        except (OSError, http.client.HTTPException, ValueError):
            return None, {}
        finally:
            c.close()

    def set_failpoint(self, node_id: str, name: str, on: bool) -> bool:
        """Arm or disarm a raftkv failpoint (the node runs with --failpoints); whether the node agreed."""
        c = self.client(node_id, timeout=1.0)
        try:
            code, _ = c.request("PUT" if on else "DELETE", "/failpoints/" + quote(name, safe=""))
            return code == 200
        except (OSError, http.client.HTTPException, ValueError):
            return False
        finally:
            c.close()

    def node_file(self, node_id: str, path: str) -> Path:
        """The file here that is `path` inside node_id (a layout path: its clock file, or under its data dir)."""
        # Not the cluster key: here one file serves every node.
        own = {self.layout.clock_file: self.clock_file(node_id), self.layout.data_dir: self.data_dir(node_id)}
        for inside, here in own.items():
            if path == inside or path.startswith(inside + "/"):
                return here / path[len(inside) + 1:] if path != inside else here
        raise ValueError(f"loopback node {node_id} has no file {path} (it has: {', '.join(own)})")

    def put_file(self, node_id: str, path: str, data: bytes) -> None:
        """Replace one of the node's files atomically (a temp file, then rename), so it never reads half of it."""
        dest = self.node_file(node_id, path)
        tmp = dest.with_name(dest.name + ".splitbrain-tmp")
        tmp.write_bytes(data)
        os.replace(tmp, dest)

    def write_file(self, node_id: str, path: str, data: bytes) -> None:
        """Write one of the node's files in place (it is paused or down: nothing reads it mid-write)."""
        self.node_file(node_id, path).write_bytes(data)

    def exec(self, node_id: str, cmd: list[str], timeout: float | None = None) -> tuple[int, str]:
        raise NotImplementedError(f"loopback node {node_id} is a process, not a container: cannot run {cmd[:1]} "
                                  "inside it (this fault needs the Docker backend)")

    def exec_netns(self, node_id: str, cmd: list[str]) -> tuple[int, str]:
        raise NotImplementedError(f"loopback nodes share the host's network: {node_id} has no network namespace "
                                  "of its own for iptables or tc (network faults need the Docker backend)")

    def exec_detached(self, node_id: str, cmd: list[str]) -> None:
        self.exec(node_id, cmd)

    # -- rogue members (the impostor fault): local processes on ports of their own --------

    def peer_address(self, node_id: str) -> tuple[str, int]:
        return "127.0.0.1", self.peer_ports[node_id]

    def rogue_address(self, name: str) -> tuple[str, int]:
        if name not in self._rogue_ports:
            self._rogue_ports[name] = free_ports(1)[0]
        return "127.0.0.1", self._rogue_ports[name]

    @staticmethod
    def _local(cmd: list[str]) -> list[str]:
        # The target's argv names the image's python3; here it is this interpreter.
        return [sys.executable, *cmd[1:]] if cmd and cmd[0] == "python3" else list(cmd)

    def rogue_log_path(self, name: str) -> Path:
        return self.base / f"rogue-{name}.log"

    def rogue_key_path(self) -> str:
        return str(self.key_file)  # one file for every process here

    def start_rogue(self, name: str, command: list[str], with_key: bool = False) -> None:
        self.rogue_address(name)
        self.rogues[name] = self._spawn(self._local(command), self.rogue_log_path(name))

    def rogue_state(self, name: str) -> str:
        proc = self.rogues.get(name)
        if proc is None:
            return "missing"
        return "running" if proc.poll() is None else "exited"

    def rogue_exec(self, name: str, cmd: list[str]) -> tuple[int, str]:
        """Run cmd here: a loopback rogue shares the host's network, so this is its view of it."""
        done = subprocess.run(self._local(cmd), capture_output=True, text=True, timeout=30)
        return done.returncode, done.stdout + done.stderr

    def rogue_log(self, name: str) -> str:
        try:
            return self.rogue_log_path(name).read_text(errors="replace")
        except OSError:
            return ""

    def remove_rogue(self, name: str) -> None:
        proc = self.rogues.pop(name, None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def log_tail(self, node_id: str, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path(node_id).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- probing ---------------------------------------------------------------------

    def client(self, node_id: str, timeout: float = 5.0) -> NodeClient:
        return NodeClient(self.client_ports[node_id], timeout)

    def status(self, node_id: str, timeout: float = 0.5) -> dict | None:
        c = self.client(node_id, timeout)
        try:
            code, body = c.request("GET", "/status")
            return body if code == 200 else None
        except (OSError, http.client.HTTPException, ValueError):
            return None
        finally:
            c.close()

    def metrics(self, node_id: str) -> dict[str, float]:
        """The node's /metrics as {"name{labels}": value}."""
        c = self.client(node_id)
        try:
            _, text = c.request("GET", "/metrics")
        finally:
            c.close()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def statuses(self, among: list[str] | None = None) -> dict[str, dict]:
        out = {}
        for node_id in among or self.alive():
            st = self.status(node_id)
            if st is not None:
                out[node_id] = st
        return out

    def leader(self, among: list[str] | None = None) -> str | None:
        """The node that says it leads in the highest term any reachable node reports, if any."""
        sts = self.statuses(among)
        if not sts:
            return None
        top = max(s["term"] for s in sts.values())
        leaders = [i for i, s in sts.items() if s["role"] == "leader" and s["term"] == top]
        return leaders[0] if leaders else None

    def wait_for_leader(self, timeout: float = 10.0, among: list[str] | None = None,
                        not_this: str | None = None) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lead = self.leader(among)
            if lead is not None and lead != not_this:
                return lead
            time.sleep(0.02)
        raise TimeoutError(f"no leader within {timeout}s; statuses: {self.statuses(among)}")

    def wait_for_applied(self, node_id: str, index: int, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.status(node_id)
            if st is not None and st["applied_index"] >= index:
                return st
            time.sleep(0.05)
        raise TimeoutError(f"{node_id} did not apply index {index} within {timeout}s: "
                           f"{self.status(node_id)}")

    def _ask_leader(self, request, definite, what: str, timeout: float):
        """`request(client)` against whoever leads now, until `definite(code)`; (code, body)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lead = self.leader()
            if lead is not None:
                c = self.client(lead, timeout=3)
                try:
                    code, body = request(c)
                    if definite(code):
                        return code, body
                except (OSError, http.client.HTTPException):
                    pass
                finally:
                    c.close()
            time.sleep(0.02)
        raise TimeoutError(f"{what} not answered within {timeout}s")

    def get_via_leader(self, key: str, timeout: float = 10.0):
        """The value a linearizable read through the current leader returns (None if absent)."""
        code, body = self._ask_leader(lambda c: c.get(key), lambda code: code in (200, 404),
                                      f"read of {key}", timeout)
        return body["value"] if code == 200 else None

    def cas_via_leader(self, key: str, old, new, timeout: float = 10.0) -> tuple[int, dict]:
        """The first definite answer (200 or 409) to a CAS sent to whichever node leads."""
        request_id = secrets.token_hex(8)
        return self._ask_leader(lambda c: c.cas(key, old, new, request_id),
                                lambda code: code in (200, 409), f"cas {key} {old!r}->{new!r}", timeout)

    def put_via_leader(self, key: str, value, timeout: float = 10.0,
                       request_id: str | None = None) -> str:
        """Write through whichever node leads; the node that acked.

        Retries carry the same request id, so a retried write applies at most once.
        """
        request_id = request_id or secrets.token_hex(8)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # Try the node that acked last time before asking everyone who leads.
            lead = self._last_writer if self._last_writer in self.alive() else self.leader()
            if lead is not None:
                c = self.client(lead, timeout=3)
                try:
                    code, body = c.put(key, value, request_id)
                    if code == 200:
                        self._last_writer = lead
                        return lead
                except (OSError, http.client.HTTPException):
                    pass
                finally:
                    c.close()
            self._last_writer = None
            time.sleep(0.02)
        raise TimeoutError(f"write {key}={value!r} not acknowledged within {timeout}s")
