"""The raftkv target plugin: its image, its node command line, its HTTP client and its status probe.

The client speaks HTTP/1.1 with keep-alive over asyncio streams (the store's
API is four routes with JSON bodies, and the harness must not block a thread
per request). Every outcome is classified for the history:

- ``ok``: 200 (and 404 for a read: the key is absent, value None).
- ``fail`` (certainly not applied): the connection could not be opened, so
  nothing was sent; any 503 (not-leader: the node knows no leader; or a
  forward refused or never sent, see node.py); 409 cas-mismatch; 400.
- ``info`` (may have been applied): timeout after sending, 504 (also a
  forward whose answer did not come back), a reset or EOF after sending, a
  protocol violation (see below), anything else.

A follower forwards a request to the leader and relays its answer, which
names the node that served it ("served_by"): the completion records that
node, so the split-brain checker sees which leader acknowledged what.

A keep-alive connection is reused only when it holds no unread bytes. A
server that sends more than one response to one request (a bug, or a
duplicating network) would otherwise make the next request on that
connection read the stale answer, and the checker would report an anomaly
the store never committed. Bytes left over after a full response, or bytes
waiting on an idle connection, close it; the operation whose response came
with extra bytes is ``info`` ("protocol violation: ..."), never ``ok``.
(HTTP/1.1 cannot tell a duplicate still in flight when the next request goes
out from that request's answer; the checks catch every duplicate that has
arrived by then.)
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from targets.base import (
    CLOCK_FILE,
    ClusterLayout,
    Rogue,
    RoguePlan,
    TargetOptions,
    unsupported_by_clock_control,
)
from targets.image import ImageRecipe, files_under
from targets.options import SettingsError, positive_int, refusals, unknown
from targets.prometheus import metrics_counters

# Debian packages a raftkv (or paxoskv) node runs with beyond python3: the event loop (see __main__.py).
NODE_PACKAGES = ("python3-uvloop",)

REPO_ROOT = Path(__file__).resolve().parents[2]
PEER_PORT = 7000
CLIENT_PORT = 8000

SET_PREFIX = "set-element/"

# Modules of targets/raftkv that no node runs: the harness side and the tools.
NOT_IN_NODE_IMAGE = frozenset({"plugin.py", "sim.py", "demo.py", "loopback.py"})


class Definite(Exception):
    """The request was certainly not sent (connect failed)."""


class ProtocolViolation(Exception):
    """The server sent bytes no request asked for: the response read may be a stale one; outcome unknown."""


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:
            pass

    def unread(self) -> int:
        """Bytes received and not yet read. StreamReader has no public way to ask; its buffer is a bytearray."""
        return len(getattr(self.reader, "_buffer", b""))


class HttpPool:
    """Idle keep-alive connections per address; a request takes one or opens a new one."""

    def __init__(self, connect_timeout: float = 0.5):
        self.connect_timeout = connect_timeout
        self._idle: dict[str, list[_Conn]] = {}

    async def _connect(self, address: str) -> _Conn:
        host, _, port = address.rpartition(":")
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, int(port)), self.connect_timeout
            )
        except (TimeoutError, OSError) as e:
            raise Definite(f"connect: {type(e).__name__}: {e}".rstrip(": ")) from None
        return _Conn(reader, writer)

    async def request(
        self, address: str, method: str, path: str, body: dict | None, timeout: float
    ) -> tuple[int, dict]:
        """(status, JSON body). Raises Definite when nothing was sent; other exceptions mean unknown."""
        idle = self._idle.setdefault(address, [])
        # An idle connection the server has closed would turn this request into
        # an unknown outcome for nothing, and one holding unread bytes would
        # answer it with a stale response: drop such connections first.
        while idle and (idle[-1].reader.at_eof() or idle[-1].writer.is_closing() or idle[-1].unread()):
            idle.pop().close()
        conn = idle.pop() if idle else await self._connect(address)
        payload = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {len(payload)}\r\n"
            + ("Content-Type: application/json\r\n" if body is not None else "")
            + "\r\n"
        ).encode()
        try:
            conn.writer.write(head + payload)
            status, doc, keep = await asyncio.wait_for(_read_response(conn.reader), timeout)
        except BaseException:
            conn.close()
            raise
        extra = conn.unread()
        if extra:
            conn.close()
            raise ProtocolViolation(f"{extra} bytes beyond the response to {method} {path}: "
                                    "more than one answer to one request; connection closed")
        if keep:
            idle.append(conn)
        else:
            conn.close()
        return status, doc

    def close(self) -> None:
        for conns in self._idle.values():
            for c in conns:
                c.close()
        self._idle.clear()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    keep = True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "connection" and value.strip().lower() == "close":
            keep = False
    data = await reader.readexactly(length) if length else b""
    try:
        doc = json.loads(data) if data else {}
    except ValueError:
        doc = {"error": "unparsable-body", "detail": data[:200].decode("latin-1")}
    return status, doc if isinstance(doc, dict) else {"value": doc}, keep


def _outcome(kind: str, value: Any = None, error: str | None = None) -> dict[str, Any]:
    return {"type": kind, "value": value, "error": error}


class RaftKVClient:
    """Workload operations against raftkv nodes: read/write/cas on registers, add/read on a set."""

    def __init__(self, addresses: dict[str, str], timeout: float = 1.0):
        self.addresses = dict(addresses)
        self.timeout = timeout
        self.pool = HttpPool(connect_timeout=min(0.5, timeout))
        # Set elements ever attempted, per set key: the final read asks for each
        # (raftkv has no range reads, so every element is its own key).
        self._set_elements: dict[str, set] = {}

    async def _call(self, node_id: str, method: str, path: str, body: dict | None) -> tuple[str, int, dict, str | None]:
        """("sent", status, doc, None) | ("fail"|"info", 0, {}, error)."""
        try:
            status, doc = await self.pool.request(self.addresses[node_id], method, path, body, self.timeout)
            return "sent", status, doc, None
        except Definite as e:
            return "fail", 0, {}, str(e)
        except TimeoutError:
            return "info", 0, {}, "timeout"
        except ProtocolViolation as e:
            return "info", 0, {}, f"protocol violation: {e}"
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
            return "info", 0, {}, f"{type(e).__name__}: {e}"[:200]

    async def invoke(self, node_id: str, op: dict[str, Any]) -> dict[str, Any]:
        f, key, value = op["f"], str(op.get("key")), op.get("value")
        if f == "read":
            if key in self._set_elements or op.get("set"):
                return await self._read_set(node_id, key)
            return await self._single(node_id, "GET", f"/kv/{quote(key, safe='')}", None, read=True)
        if f == "write":
            return await self._single(node_id, "PUT", f"/kv/{quote(key, safe='')}",
                                      {"value": value, "request_id": uuid.uuid4().hex}, echo=value)
        if f == "cas":
            frm, to = value
            return await self._single(node_id, "POST", f"/kv/{quote(key, safe='')}/cas",
                                      {"from": frm, "to": to, "request_id": uuid.uuid4().hex}, echo=value)
        if f == "add":
            self._set_elements.setdefault(key, set()).add(value)
            return await self._single(node_id, "PUT", f"/kv/{quote(SET_PREFIX + key + '/' + str(value), safe='')}",
                                      {"value": value, "request_id": uuid.uuid4().hex}, echo=value)
        return _outcome("fail", None, f"unknown operation {f!r}")

    async def _single(self, node_id, method, path, body, read=False, echo=None) -> dict[str, Any]:
        kind, status, doc, error = await self._call(node_id, method, path, body)
        if kind != "sent":
            return _outcome(kind, None, error)
        out = self._classify(status, doc, read, echo)
        if isinstance(doc.get("served_by"), str):
            out["node"] = doc["served_by"]
        return out

    @staticmethod
    def _classify(status: int, doc: dict, read: bool, echo: Any) -> dict[str, Any]:
        if status == 200:
            return _outcome("ok", doc.get("value") if read else echo)
        if status == 404 and read:
            return _outcome("ok", None)
        err = str(doc.get("error", status))
        if status in (503, 409, 400, 404):
            return _outcome("fail", None, err)
        return _outcome("info", None, err)

    async def _read_set(self, node_id: str, key: str) -> dict[str, Any]:
        """Read every element ever attempted (raftkv has no range reads): one GET each, 64 at a time.

        The first element is read alone, so a node that refuses (not the leader)
        costs one request, not thousands.
        """
        elements = sorted(self._set_elements.get(key, ()), key=lambda v: (str(type(v)), v))
        sem = asyncio.Semaphore(64)

        async def one(v):
            async with sem:
                return v, await self._single(node_id, "GET", f"/kv/{quote(SET_PREFIX + key + '/' + str(v), safe='')}",
                                             None, read=True)

        results = []
        if elements:
            results.append(await one(elements[0]))
            if results[0][1]["type"] == "ok":
                results += await asyncio.gather(*(one(v) for v in elements[1:]))
        found = []
        for v, r in results:
            if r["type"] != "ok":
                # One element unknown makes the whole read unknown; a refusal makes it a refusal.
                return _outcome(r["type"], None, f"element {v}: {r['error']}")
            if r["value"] is not None:
                found.append(v)
        return _outcome("ok", found)

    async def close(self) -> None:
        self.pool.close()


RAFTKV_ELECTION_COUNTERS = {"messages": "raftkv_peer_messages_sent_total", "fsyncs": "raftkv_fsync_seconds_count"}


async def _one_request(address: str, method: str, path: str, timeout: float) -> tuple[int | None, dict]:
    """One request on its own connection, for the harness's probes; (None, {}) if it got no answer."""
    pool = HttpPool(connect_timeout=timeout)
    try:
        return await pool.request(address, method, path, None, timeout)
    except Exception:
        return None, {}
    finally:
        pool.close()


class RaftKV:
    """The built-in Raft key-value store (targets/raftkv)."""

    name = "raftkv"
    peer_port = PEER_PORT
    client_port = CLIENT_PORT

    def image_recipe(self) -> ImageRecipe:
        # The node runs `python3 -m targets.raftkv`; only what a node runs goes
        # into the image, so editing a tool (this plugin, the simulator, the
        # demo, the loopback cluster) does not rebuild it.
        files = (("targets/__init__.py", REPO_ROOT / "targets" / "__init__.py"),) + tuple(
            (dest, src) for dest, src in files_under(REPO_ROOT, "targets/raftkv")
            if Path(dest).name not in NOT_IN_NODE_IMAGE
        )
        return ImageRecipe(name=self.name, files=files, packages=NODE_PACKAGES,
                           env=(("PYTHONDONTWRITEBYTECODE", "1"),))

    def node_command(self, node_id: str, cluster: ClusterLayout, options: TargetOptions) -> list[str]:
        peers = ",".join(f"{n.id}={n.ip}:{cluster.peer_port}" for n in cluster.nodes)
        cmd = [
            "python3", "-u", "-m", "targets.raftkv",
            "--id", node_id,
            "--peers", peers,
            "--client", f"0.0.0.0:{cluster.client_port}",
            "--data", cluster.data_dir,
            "--cluster-key-file", cluster.cluster_key_file,
            "--clock-file", cluster.clock_file,
            # The vote-crash nemesis arms a crash point over HTTP; the API is
            # only reachable on the run's private network.
            "--failpoints",
        ]
        s = options.settings
        if "election_timeout" in s:
            cmd += ["--election-timeout", str(s["election_timeout"])]
        if "heartbeat" in s:
            cmd += ["--heartbeat", str(s["heartbeat"])]
        if "tick" in s:
            cmd += ["--tick", str(s["tick"])]
        if s.get("lease_reads"):
            cmd.append("--lease-reads")
        for bug in options.bugs:
            cmd += ["--bug", bug]
        return cmd

    def node_environment(self, node_id: str, cluster: ClusterLayout, options: TargetOptions) -> dict[str, str]:
        return {}

    def clock_control(self) -> str | None:
        return CLOCK_FILE

    def client(self, addresses: dict[str, str], timeout: float = 1.0) -> RaftKVClient:
        return RaftKVClient(addresses, timeout)

    async def status_probe(self, address: str, timeout: float = 0.5) -> dict[str, Any] | None:
        status, doc = await _one_request(address, "GET", "/status", timeout)
        return doc if status == 200 else None

    async def election_counters(self, address: str, timeout: float = 1.0) -> dict[str, int] | None:
        """What an election costs, as counters the bench reads before and after one: peer messages
        sent and WAL fsyncs, from the node's /metrics; None when it does not answer."""
        return await metrics_counters(f"http://{address}/metrics", RAFTKV_ELECTION_COUNTERS, timeout)

    def unsupported_faults(self, faults) -> list[str]:
        return unsupported_by_clock_control(self, faults)

    def unsupported_options(self, settings: dict[str, Any]) -> list[str]:
        """The `options:` node_command passes to raftkv's own flags, checked as
        those flags would check them, so `election_timeout: banana` is one line
        before anything starts instead of three nodes that exit at boot."""
        return refusals(_check_raftkv_options, settings)

    def failpoints(self) -> dict[str, str]:
        from targets.raftkv.failpoints import FAILPOINTS

        return dict(FAILPOINTS)

    async def set_failpoint(self, address: str, name: str, on: bool, timeout: float = 0.5) -> bool:
        status, _ = await _one_request(address, "PUT" if on else "DELETE", f"/failpoints/{quote(name)}", timeout)
        return status == 200

    async def membership(self, address: str, action: str = "show", member: str | None = None,
                         timeout: float = 2.0) -> tuple[int | None, dict]:
        """The membership admin API (targets/raftkv/membership.py): action "show" is GET /membership (the node's
        configuration); "add-learner", "promote" and "remove" POST a change, which the node forwards to its
        leader. (status, body); (None, {}) when the node did not answer."""
        pool = HttpPool(connect_timeout=min(0.5, timeout))
        try:
            if action == "show":
                return await pool.request(address, "GET", "/membership", None, timeout)
            path = f"/membership/{quote(action, safe='')}/{quote(member or '', safe='')}"
            return await pool.request(address, "POST", path, None, timeout)
        except Exception:
            return None, {}
        finally:
            pool.close()

    def data_dir(self, layout: ClusterLayout) -> str:
        """The node's --data: FORMAT, the checksummed wal and the snapshot (targets/raftkv/storage.py)."""
        return layout.data_dir

    def bugs(self) -> dict[str, str]:
        from targets.raftkv.node import BUGS

        return dict(BUGS)

    def peer_auth(self) -> str:
        return ("HMAC-SHA256 challenge-response handshake under the run's cluster key, then frames "
                "sequenced under a per-connection key (targets/raftkv/transport.py)")

    def impostor(self, rogue: Rogue) -> RoguePlan:
        """targets.raftkv.impostor: raftkv's transport without the key, campaigning in rogue.term."""
        peers = ",".join(f"{n}={h}:{p}" for n, (h, p) in rogue.members.items())
        command = ["python3", "-u", "-m", "targets.raftkv.impostor", "--id", rogue.claim,
                   "--listen", f"{rogue.address[0]}:{rogue.address[1]}", "--peers", peers,
                   "--term", str(rogue.term), "--key", rogue.key]
        if rogue.key == "stolen":
            command += ["--key-file", rogue.key_file]
        return RoguePlan(command, rogue.term)


RAFTKV_OPTIONS = ("election_timeout", "heartbeat", "tick", "lease_reads")


def _check_raftkv_options(settings: dict[str, Any]) -> None:
    unknown("raftkv", settings, RAFTKV_OPTIONS)
    if "election_timeout" in settings:
        text = str(settings["election_timeout"]) if not isinstance(settings["election_timeout"], bool) else ""
        lo, sep, hi = text.partition("-")
        # raftkv's own --election-timeout rule (targets/raftkv/__main__.py parse_range).
        if not (sep and lo.isdigit() and hi.isdigit() and len(text) < 16 and 0 < int(lo) <= int(hi)):
            raise SettingsError(f"election_timeout: expected \"LO-HI\" in ms with 0 < LO <= HI, "
                                f"got {settings['election_timeout']!r}")
    for name in ("heartbeat", "tick"):
        if name in settings:
            positive_int(name, settings[name], "ms")
    if "lease_reads" in settings and not isinstance(settings["lease_reads"], bool):
        raise SettingsError(f"lease_reads: expected true or false, got {settings['lease_reads']!r}")
