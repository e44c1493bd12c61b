"""Start, probe and stop a local etcd cluster of real processes on 127.0.0.1 (Debian's etcd-server, no containers).

The loopback twin of targets/raftkv/loopback.py, for benches that compare the
two stores on one machine (bench/raftkv_vs_etcd.py): n members, each with its
own peer and client port, data dir and log under one folder, a static
``--initial-cluster``, fsync as etcd does by default (its WAL, before every
acknowledgement). Use it as a context manager: it owns the processes it
starts, and ends only those (by their Popen handles).

``ensure_etcd`` is the set-up step: if no ``etcd`` is on PATH it installs
Debian's ``etcd-server`` with apt-get (saying so first); the package's own
service is not started (invoke-rc.d's policy refuses it in a container, and
we never use it).

The probe is the v3 JSON gateway's ``/v3/maintenance/status`` (member id,
the member's leader, its raft index); it is enough to find the leader and
to see a restarted member catch up. A tool, not part of a node.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from targets.raftkv.loopback import free_ports

PACKAGE = "etcd-server"


class EtcdMissing(Exception):
    """etcd is not installed and could not be installed here."""


def ensure_etcd(say=print) -> str:
    """The etcd binary's path; installs Debian's etcd-server first if there is none (needs root and apt)."""
    found = shutil.which("etcd")
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise EtcdMissing(f"no etcd on PATH; install Debian's {PACKAGE} (apt-get install {PACKAGE}) as root")
    say(f"set-up: etcd is missing; installing Debian's {PACKAGE} (apt-get install -y {PACKAGE})", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", PACKAGE]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        # The package lists may be missing (a fresh image): fetch them once and try again.
        subprocess.run(["apt-get", "update"], env=env, capture_output=True)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
            raise EtcdMissing(f"apt-get install {PACKAGE} failed: {tail[0]}")
    found = shutil.which("etcd")
    if not found:
        raise EtcdMissing(f"{PACKAGE} installed, but no etcd on PATH")
    return found


def etcd_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    first = out.splitlines()[0] if out else "etcd ?"
    return first.replace("etcd Version: ", "etcd ")


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


class LocalEtcd:
    """n etcd members on 127.0.0.1; node ids n1..nN, as LocalCluster names raftkv's."""

    def __init__(self, n: int = 3, base_dir: str | None = None, heartbeat_ms: int = 30,
                 election_ms: int = 150, binary: str = "etcd"):
        self.ids = [f"n{i}" for i in range(1, n + 1)]
        self._tmp = None
        if base_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="etcd-cluster-")
            base_dir = self._tmp.name
        self.base = Path(base_dir)
        ports = free_ports(2 * n)
        self.peer_ports = dict(zip(self.ids, ports[:n], strict=True))
        self.client_ports = dict(zip(self.ids, ports[n:], strict=True))
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.binary = binary
        self.token = "bench-" + secrets.token_hex(8)  # no member of another cluster joins this one
        self.procs: dict[str, subprocess.Popen] = {}
        self._member_ids: dict[str, str] = {}  # etcd's member id (decimal string) -> node id

    def data_dir(self, node_id: str) -> Path:
        return self.base / node_id

    def log_path(self, node_id: str) -> Path:
        return self.base / f"{node_id}.log"

    def command(self, node_id: str) -> list[str]:
        peer = f"http://127.0.0.1:{self.peer_ports[node_id]}"
        client = f"http://127.0.0.1:{self.client_ports[node_id]}"
        cluster = ",".join(f"{i}=http://127.0.0.1:{p}" for i, p in self.peer_ports.items())
        return [self.binary, f"--name={node_id}", f"--data-dir={self.data_dir(node_id)}",
                f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
                f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
                f"--initial-cluster={cluster}", "--initial-cluster-state=new",
                f"--initial-cluster-token={self.token}",
                f"--heartbeat-interval={self.heartbeat_ms}", f"--election-timeout={self.election_ms}",
                "--logger=zap", "--log-outputs=stderr"]

    def start(self, node_id: str) -> None:
        assert node_id not in self.procs or self.procs[node_id].poll() is not None, node_id
        with open(self.log_path(node_id), "ab") as logf:
            self.procs[node_id] = subprocess.Popen(self.command(node_id), cwd=self.base,
                                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                   stderr=logf)

    def start_all(self, wait: float = 20.0) -> None:
        for node_id in self.ids:
            self.start(node_id)
        for node_id in self.ids:
            self.wait_until_serving(node_id, wait)

    def kill(self, node_id: str, sig: int = signal.SIGKILL) -> None:
        """Signal the member and return once it is gone; its data dir stays."""
        proc = self.procs.get(node_id)
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(10)

    def alive(self) -> list[str]:
        return [i for i, p in self.procs.items() if p.poll() is None]

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
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

    def __enter__(self) -> LocalEtcd:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def log_tail(self, node_id: str, lines: int = 10) -> str:
        try:
            return "\n".join(self.log_path(node_id).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- probing -------------------------------------------------------------------

    def status(self, node_id: str, timeout: float = 0.5) -> dict | None:
        """The member's /v3/maintenance/status, with "id" (our node id) and "leader_id" (ours, or None)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.client_ports[node_id], timeout=timeout)
        try:
            conn.request("POST", "/v3/maintenance/status", body="{}",
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
            if resp.status != 200:
                return None
            st = json.loads(raw)
        except (OSError, http.client.HTTPException, ValueError):
            return None
        finally:
            conn.close()
        me = str(st.get("header", {}).get("member_id", ""))
        if me:
            self._member_ids[me] = node_id
        st["id"] = node_id
        st["leader_id"] = self._member_ids.get(str(st.get("leader", "")))
        return st

    def wait_until_serving(self, node_id: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[node_id]
            if proc.poll() is not None:
                raise RuntimeError(f"etcd {node_id} exited with {proc.returncode}: {self.log_tail(node_id)}")
            if self.status(node_id) is not None:
                return
            time.sleep(0.02)
        raise TimeoutError(f"etcd {node_id} did not serve within {timeout}s: {self.log_tail(node_id)}")

    def leader(self, among: list[str] | None = None) -> str | None:
        """The member that every reachable member of `among` names as leader, if they agree."""
        sts = [self.status(i) for i in (among or self.alive())]
        named = {st["leader_id"] for st in sts if st is not None}
        if len(named) != 1:
            return None
        lead = named.pop()
        return lead if lead in (among or self.alive()) else None

    def wait_for_leader(self, timeout: float = 10.0, among: list[str] | None = None) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lead = self.leader(among)
            if lead is not None:
                return lead
            time.sleep(0.02)
        raise TimeoutError(f"etcd: no agreed leader within {timeout}s")

    def wait_caught_up(self, node_id: str, timeout: float = 15.0) -> None:
        """Until node_id's raft index reaches the leader's (as the leader reports it when we start waiting)."""
        lead = self.wait_for_leader(timeout)
        target = int((self.status(lead) or {}).get("raftIndex", 0))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.status(node_id)
            if st is not None and int(st.get("raftIndex", 0)) >= target and st["leader_id"] == lead:
                return
            time.sleep(0.02)
        raise TimeoutError(f"etcd {node_id} did not catch up to index {target} within {timeout}s")
