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

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
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
    head_end = buf.find(b"\r\n\r\n")
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
        headers[name.lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise HttpError(400, "bad-request", "chunked bodies are not supported; send Content-Length")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise HttpError(400, "bad-request", "bad Content-Length") from None
    if length < 0:
        raise HttpError(400, "bad-request", "bad Content-Length")
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

    kind: str  # "op" | "status" | "metrics" | "failpoints" | "failpoint"
    op: dict | None = None  # for "failpoint": {"name", "on"}


def _json_body(req: Request) -> dict:
    try:
        doc = json.loads(req.body)
    except ValueError:
        raise HttpError(400, "bad-request", "body is not valid JSON") from None
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
                 failpoints: Failpoints | None = None):
        self.submit = submit
        self.status = status
        self.metrics = metrics
        self.failpoints = failpoints or Failpoints(enabled=False)
        self.counters = {"http_requests": 0, "http_bad_requests": 0}
        self._server: asyncio.AbstractServer | None = None
        self._conns: dict[asyncio.Task, asyncio.StreamWriter] = {}

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port)

    async def _answer(self, req: Request) -> tuple[int, dict | str]:
        r = route(req)
        if r.kind == "status":
            return 200, self.status()
        if r.kind == "metrics":
            return 200, self.metrics()
        if r.kind in ("failpoints", "failpoint"):
            return self._failpoint(r)
        return await self.submit(r.op)

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
        self._conns[task] = writer
        buf = bytearray()
        try:
            while True:
                try:
                    req = parse_request(buf)
                    continued = False
                    while req is None:
                        if not continued and expects_continue(buf):
                            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                            continued = True
                        chunk = await reader.read(65536)
                        if not chunk:
                            return
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
                writer.write(encode_response(status, body, req.keep_alive))
                if writer.transport.get_write_buffer_size() > DRAIN_ABOVE_BYTES:
                    await writer.drain()  # only a client that does not read can fill it
                if not req.keep_alive:
                    await writer.drain()
                    return
        except (ConnectionError, OSError):
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
