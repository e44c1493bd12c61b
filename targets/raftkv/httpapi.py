"""The raftkv client API: a small HTTP/1.1 server with JSON bodies and keep-alive.

Routes (what the harness, the bench and other tools depend on):

- ``GET /kv/<key>``              -> the node's reply to {"f": "get"}
- ``PUT /kv/<key>`` {"value": V, "request_id"?: str}          -> {"f": "put"}
- ``POST /kv/<key>/cas`` {"from": A, "to": B, "request_id"?: str} -> {"f": "cas"}
- ``GET /status``                -> the node's status, plus "wall_time" and "clock_rate"
  (this node's skewable clock, see clock.py)
- ``GET /metrics``               -> Prometheus text
- ``GET /failpoints``, ``PUT|DELETE /failpoints/<name>`` -> list, arm, disarm a
  crash point (see failpoints.py); 404 unless the node runs with --failpoints
- ``GET /membership``            -> this node's latest configuration: "voters", "learners",
  "member" (its own place), "config_index", "committed", "leader", "term"
- ``POST /membership/add-learner/<id>``, ``/membership/promote/<id>``,
  ``/membership/remove/<id>`` -> {"f": "membership", "action", "member"}: a
  change through the log, forwarded to the leader like a write (node.py)

Keys are URL-decoded (``/kv/a%2Fb`` is the key ``a/b``). Status codes and
bodies of /kv requests are whatever the node replies; a request this layer
cannot understand gets 400 ``{"error": "bad-request", "detail": ...}``.

Parsing (``parse_request``) and routing (``route``) are pure functions over
bytes, so they are tested without sockets; ``HttpApi`` is the thin asyncio
server around them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote

from .failpoints import Failpoints, UnknownFailpoint
from .membership import ACTIONS as MEMBERSHIP_ACTIONS

MAX_HEAD_BYTES = 64 * 1024
# A value is replicated, logged, snapshotted and re-encoded on every node, all on one event loop:
# one request of 16 MiB (or of 500k keys) cost the leader its leadership, and so did twenty
# concurrent bodies of 1 MiB (bench/raftkv_attack.py). 256 KiB is far above what a test's values need.
MAX_BODY_BYTES = 256 * 1024
# Admission control: the bodies of requests the node is working on at once. Past it a request is
# refused with 503 busy before it reaches the node (certainly not applied). Without it, 20
# concurrent bodies of 256 KiB, or 200 of 64 KiB, stalled the loop past an election timeout.
MAX_INFLIGHT_BYTES = 1024 * 1024
# JSON nested deeper than this is refused before it is parsed: 975 levels made json.dumps raise
# RecursionError in the storage layer and the node exit, from one 2 KB request.
MAX_JSON_DEPTH = 64
# Slowloris: a request head must be complete this long after its first byte; an idle keep-alive
# connection is closed after IDLE_TIMEOUT_S; beyond MAX_CONNECTIONS a new one is answered 503.
HEAD_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 120.0
MAX_CONNECTIONS = 512
# Responses are small: waiting for each to be flushed costs a coroutine per
# request for nothing, so we only wait when a client stops reading.
DRAIN_ABOVE_BYTES = 256 * 1024

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 413: "Payload Too Large", 500: "Internal Server Error",
           503: "Service Unavailable", 504: "Gateway Timeout"}

log = logging.getLogger("raftkv.http")


class HttpError(Exception):
    """A request this layer answers itself; ``body`` is the JSON error."""

    def __init__(self, status: int, error: str, detail: str | None = None):
        super().__init__(detail or error)
        self.status = status
        self.body = {"error": error} if detail is None else {"error": error, "detail": detail}


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return conn == "keep-alive"
        return conn != "close"


def parse_request(buf: bytearray) -> Request | None:
    """Take one complete request off the front of ``buf``; None if more bytes are needed.

    Raises HttpError(400 / 413) for a request that can never become valid.
    """
    head_end = buf.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES + 4)
    if head_end < 0:
        if len(buf) > MAX_HEAD_BYTES:
            raise HttpError(413, "bad-request", "request head too large")
        return None
    head = bytes(buf[:head_end]).decode("latin-1")  # latin-1 maps every byte: never fails
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "bad-request", "malformed request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(400, "bad-request", "malformed header line")
        lower = name.lower()
        if lower == "content-length" and lower in headers:
            # Two lengths is how requests are smuggled past a proxy: never pick one (RFC 9112 6.3).
            raise HttpError(400, "bad-request", "more than one Content-Length")
        headers[lower] = value.strip()
    if "transfer-encoding" in headers:
        raise HttpError(400, "bad-request", "chunked bodies are not supported; send Content-Length")
    text = headers.get("content-length", "0")
    # Digits only: int() would also take "+12", "1_2" and " 12".
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise HttpError(400, "bad-request", "bad Content-Length")
    length = int(text)
    if length > MAX_BODY_BYTES:
        raise HttpError(413, "bad-request", "body too large")
    body_start = head_end + 4
    if len(buf) < body_start + length:
        return None
    body = bytes(buf[body_start : body_start + length])
    del buf[: body_start + length]
    return Request(method, target, version, headers, body)


def expects_continue(buf: bytearray) -> bool:
    """True when a complete head in ``buf`` asks for ``100 Continue`` before its body (curl does)."""
    head_end = buf.find(b"\r\n\r\n")
    return head_end >= 0 and b"expect: 100-continue" in bytes(buf[:head_end]).lower()


@dataclass(frozen=True)
class Route:
    """What a request asks for: a node operation, the status, or the metrics."""

    kind: str  # "op" | "status" | "metrics" | "failpoints" | "failpoint" | "membership"
    op: dict | None = None  # for "failpoint": {"name", "on"}


def nesting_exceeds(value: object, limit: int) -> bool:
    """Do lists and dicts nest deeper than limit in a parsed JSON value? An explicit stack, no
    recursion; the cost is one step per container (a scan of the raw bytes in Python cost a
    quarter of a second per 256 KiB body, and the leader its leadership under 20 of them)."""
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, list | dict):
            depth += 1
            if depth > limit:
                return True
            stack.extend((x, depth) for x in (v.values() if isinstance(v, dict) else v))
    return False


def _json_body(req: Request) -> dict:
    too_deep = HttpError(413, "bad-request", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        doc = json.loads(req.body)
    except RecursionError:  # the C parser's own limit, far past ours
        raise too_deep from None
    except ValueError:
        raise HttpError(400, "bad-request", "body is not valid JSON") from None
    if nesting_exceeds(doc, MAX_JSON_DEPTH):
        raise too_deep
    if not isinstance(doc, dict):
        raise HttpError(400, "bad-request", "body must be a JSON object")
    return doc


def _request_id(doc: dict) -> str | None:
    rid = doc.get("request_id")
    if rid is None or isinstance(rid, str):
        return rid
    if isinstance(rid, int) and not isinstance(rid, bool):
        return str(rid)
    raise HttpError(400, "bad-request", "request_id must be a string")


def route(req: Request) -> Route:
    """Map a parsed request to what the node must do. Raises HttpError."""
    path = req.target.split("?", 1)[0]
    if path == "/status" or path == "/metrics":
        if req.method != "GET":
            raise HttpError(405, "method-not-allowed")
        return Route(path[1:])
    if path == "/failpoints":
        if req.method != "GET":
            raise HttpError(405, "method-not-allowed")
        return Route("failpoints")
    if path.startswith("/failpoints/"):
        if req.method not in ("PUT", "DELETE"):
            raise HttpError(405, "method-not-allowed", "PUT arms a failpoint, DELETE disarms it")
        return Route("failpoint", {"name": unquote(path[len("/failpoints/"):]), "on": req.method == "PUT"})
    if path == "/membership" or path.startswith("/membership/"):
        return _membership_route(req, path)
    if not path.startswith("/kv/"):
        raise HttpError(404, "no-such-path", path)
    raw_key = path[len("/kv/"):]
    if req.method == "POST":
        if not raw_key.endswith("/cas"):
            raise HttpError(404, "no-such-path", "POST is only for /kv/<key>/cas")
        raw_key = raw_key[: -len("/cas")]
    try:
        key = unquote(raw_key, errors="strict")
    except UnicodeDecodeError:
        raise HttpError(400, "bad-request", "key is not valid percent-encoded UTF-8") from None
    if not key:
        raise HttpError(400, "bad-request", "empty key")
    if req.method == "GET":
        return Route("op", {"f": "get", "key": key})
    if req.method == "PUT":
        doc = _json_body(req)
        if "value" not in doc:
            raise HttpError(400, "bad-request", 'body needs "value"')
        return Route("op", {"f": "put", "key": key, "value": doc["value"],
                            "request_id": _request_id(doc)})
    if req.method == "POST":
        doc = _json_body(req)
        if "from" not in doc or "to" not in doc:
            raise HttpError(400, "bad-request", 'body needs "from" and "to"')
        return Route("op", {"f": "cas", "key": key, "from": doc["from"], "to": doc["to"],
                            "request_id": _request_id(doc)})
    raise HttpError(405, "method-not-allowed")


def _membership_route(req: Request, path: str) -> Route:
    if path == "/membership":
        if req.method != "GET":
            raise HttpError(405, "method-not-allowed", "GET /membership; POST /membership/ACTION/ID changes it")
        return Route("membership")
    parts = path.split("/")  # "", "membership", action, id
    if len(parts) != 4 or parts[2] not in MEMBERSHIP_ACTIONS or not parts[3]:
        raise HttpError(404, "no-such-path", f"POST /membership/{{{'|'.join(MEMBERSHIP_ACTIONS)}}}/ID")
    if req.method != "POST":
        raise HttpError(405, "method-not-allowed", "a membership change is a POST")
    return Route("op", {"f": "membership", "action": parts[2], "member": unquote(parts[3])})


def encode_response(status: int, body: dict | str, keep_alive: bool) -> bytes:
    if isinstance(body, str):
        payload, ctype = body.encode(), "text/plain; version=0.0.4"
    else:
        payload, ctype = json.dumps(body, separators=(",", ":")).encode(), "application/json"
    head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {len(payload)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n")
    return head.encode() + payload


class HttpApi:
    """Serves the client API; ``submit`` runs one node operation to its (status, body)."""

    def __init__(self, submit: Callable[[dict], Awaitable[tuple[int, dict]]],
                 status: Callable[[], dict], metrics: Callable[[], str],
                 failpoints: Failpoints | None = None, membership: Callable[[], dict] | None = None):
        self.submit = submit
        self.status = status
        self.membership = membership
        self.metrics = metrics
        self.failpoints = failpoints or Failpoints(enabled=False)
        self.counters = {"http_requests": 0, "http_bad_requests": 0}
        self._server: asyncio.AbstractServer | None = None
        self._conns: dict[asyncio.Task, asyncio.StreamWriter] = {}
        self._inflight_bytes = 0

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port)

    async def _answer(self, req: Request) -> tuple[int, dict | str]:
        # Admitted before its JSON is even parsed: parsing is work too.
        size = len(req.body)
        if size and self._inflight_bytes and self._inflight_bytes + size > MAX_INFLIGHT_BYTES:
            raise HttpError(503, "busy", f"over {MAX_INFLIGHT_BYTES} bytes of requests in flight; retry later")
        self._inflight_bytes += size
        try:
            r = route(req)
            if r.kind == "status":
                return 200, self.status()
            if r.kind == "metrics":
                return 200, self.metrics()
            if r.kind == "membership":
                if self.membership is None:
                    raise HttpError(404, "no-such-path", "/membership")
                return 200, self.membership()
            if r.kind in ("failpoints", "failpoint"):
                return self._failpoint(r)
            return await self.submit(r.op)
        finally:
            self._inflight_bytes -= size

    def _failpoint(self, r: Route) -> tuple[int, dict]:
        fp = self.failpoints
        if not fp.enabled:
            raise HttpError(404, "failpoints-disabled", "start the node with --failpoints")
        if r.kind == "failpoint":
            try:
                fp.set(r.op["name"], r.op["on"])
            except UnknownFailpoint:
                raise HttpError(404, "no-such-failpoint",
                                f"{r.op['name']!r}; known: {', '.join(fp.describe())}") from None
            log.warning("failpoint %s %s", r.op["name"], "armed" if r.op["on"] else "disarmed")
        return 200, fp.describe()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._conns) >= MAX_CONNECTIONS:
            self.counters["http_bad_requests"] += 1
            writer.write(encode_response(503, {"error": "too-many-connections"}, keep_alive=False))
            writer.close()
            return
        self._conns[task] = writer
        buf = bytearray()
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    req = parse_request(buf)
                    continued = False
                    # Idle between requests, then a deadline for the head (and body) once bytes come.
                    deadline = loop.time() + (HEAD_TIMEOUT_S if buf else IDLE_TIMEOUT_S)
                    while req is None:
                        if not continued and expects_continue(buf):
                            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                            continued = True
                        try:
                            async with asyncio.timeout_at(deadline):
                                chunk = await reader.read(65536)
                        except TimeoutError:
                            return  # idle too long, or a head dribbled in too slowly: hang up
                        if not chunk:
                            return
                        if not buf:
                            deadline = loop.time() + HEAD_TIMEOUT_S
                        buf += chunk
                        req = parse_request(buf)
                except HttpError as e:
                    # The stream cannot be trusted past a malformed head: answer and hang up.
                    self.counters["http_bad_requests"] += 1
                    writer.write(encode_response(e.status, e.body, keep_alive=False))
                    await writer.drain()
                    return
                self.counters["http_requests"] += 1
                try:
                    status, body = await self._answer(req)
                except HttpError as e:
                    self.counters["http_bad_requests"] += 1
                    status, body = e.status, e.body
                if writer.is_closing():
                    return  # the client hung up with requests still queued: nothing to answer
                writer.write(encode_response(status, body, req.keep_alive))
                if writer.transport.get_write_buffer_size() > DRAIN_ABOVE_BYTES:
                    await writer.drain()  # only a client that does not read can fill it
                if not req.keep_alive:
                    await writer.drain()
                    return
        except (ConnectionError, OSError, RuntimeError):
            # RuntimeError: uvloop's transport, written after the client reset it (asyncio's drops the bytes).
            pass
        finally:
            self._conns.pop(task, None)
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        # Close sockets rather than cancel handler tasks (asyncio logs a spurious
        # traceback for a cancelled stream handler); a handler waiting on the node
        # gives up when the loop ends.
        for writer in list(self._conns.values()):
            writer.close()
        if self._conns:
            await asyncio.wait(list(self._conns), timeout=0.2)
