"""tinykv's node program: a key-value store whose first node is the only primary (no replication, no failover).

Replace this file with your system, or with a script that starts it. It runs
in the node's container as `python3 /opt/splitbrain/tinykv/node.py` (Python's
standard library only: the image has nothing else) and serves the HTTP API
that splitbrain's raftkv client speaks, so the plugin reuses that client:

- ``GET /kv/<key>``                        -> 200 {"value": V}, 404 when absent
- ``PUT /kv/<key>`` {"value": V}           -> 200
- ``POST /kv/<key>/cas`` {"from": A, "to": B} -> 200, 409 {"error": "cas-mismatch"}
- ``GET /status``                          -> {"role", "term", "leader", "commit_index", "wall_time", "clock_rate"}

Every node but the primary answers /kv with 503 {"error": "not-leader"} (the
client records `fail`: certainly not done). The primary appends every write
to DATA/writes.jsonl and fsyncs before it answers, so a killed primary comes
back with everything it acknowledged. Keys are URL-decoded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


class Store:
    """The primary's keys, replayed from its write log at start and appended to on every write."""

    def __init__(self, data_dir: str):
        self.path = os.path.join(data_dir, "writes.jsonl")
        self.values: dict[str, object] = {}
        self.writes = 0
        self.lock = threading.Lock()
        if os.path.exists(self.path):
            with open(self.path) as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        break  # the last line of a killed node may be torn: it was never acknowledged
                    self.values[entry["key"]] = entry["value"]
                    self.writes += 1
        self.log = open(self.path, "a")  # open for the node's lifetime

    def read(self, key: str) -> tuple[bool, object]:
        with self.lock:
            return key in self.values, self.values.get(key)

    def write(self, key: str, value: object) -> None:
        with self.lock:
            self._append(key, value)

    def cas(self, key: str, expected: object, new: object) -> bool:
        with self.lock:
            if self.values.get(key) != expected:
                return False
            self._append(key, new)
            return True

    def _append(self, key: str, value: object) -> None:
        self.log.write(json.dumps({"key": key, "value": value}) + "\n")
        self.log.flush()
        os.fsync(self.log.fileno())  # durable before the client hears ok
        self.values[key] = value
        self.writes += 1


def wall_clock(clock_file: str) -> tuple[float, float]:
    """(wall time, rate) as the harness's clock file {"offset_s", "rate"} skews them; no file, no skew.

    This node uses time for nothing else, so a skew only shows in /status,
    which is where the clock nemesis checks that it took effect.
    """
    try:
        with open(clock_file) as f:
            doc = json.load(f)
        return time.time() + float(doc.get("offset_s", 0.0)), float(doc.get("rate", 1.0))
    except (OSError, ValueError, TypeError, AttributeError):
        return time.time(), 1.0


def make_handler(node_id: str, primary: str, store: Store, clock_file: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the client reuses its connections

        def do_GET(self) -> None:
            if self.path == "/status":
                wall, rate = wall_clock(clock_file)
                self.reply(200, {"role": "leader" if node_id == primary else "follower", "term": 1,
                                 "leader": primary, "commit_index": store.writes,
                                 "wall_time": wall, "clock_rate": rate})
                return
            key = self.key()
            if key is not None:
                found, value = store.read(key)
                if found:
                    self.reply(200, {"value": value})
                else:
                    self.reply(404, {"error": "not-found"})

        def do_PUT(self) -> None:
            body = self.body()  # read first, whatever the answer: unread bytes would become the next request
            key = self.key() if body is not None else None
            if key is not None:
                store.write(key, body.get("value"))
                self.reply(200, {"value": body.get("value")})

        def do_POST(self) -> None:
            body = self.body()
            if body is None:
                return
            if not self.path.endswith("/cas"):
                self.reply(404, {"error": "no-such-route"})
                return
            self.path = self.path[: -len("/cas")]
            key = self.key()
            if key is not None:
                if store.cas(key, body.get("from"), body.get("to")):
                    self.reply(200, {"value": body.get("to")})
                else:
                    self.reply(409, {"error": "cas-mismatch"})

        def key(self) -> str | None:
            """The key of a /kv request, or None after answering (not the primary, not a /kv path)."""
            if not self.path.startswith("/kv/"):
                self.reply(404, {"error": "no-such-route"})
                return None
            if node_id != primary:
                self.reply(503, {"error": "not-leader", "leader": primary})
                return None
            return unquote(self.path[len("/kv/"):])

        def body(self) -> dict | None:
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                doc = json.loads(data)
            except ValueError:
                doc = None
            if not isinstance(doc, dict):
                self.reply(400, {"error": "bad-request"})
                return None
            return doc

        def reply(self, status: int, doc: dict) -> None:
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:
            pass  # one line per request would drown the node's log

    return Handler


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tinykv", description=__doc__.splitlines()[0])
    p.add_argument("--id", required=True, help="this node's id (n1, n2, ...)")
    p.add_argument("--primary", required=True, help="the id of the node that serves reads and writes")
    p.add_argument("--listen", required=True, metavar="IP:PORT", help="where to serve the HTTP API")
    p.add_argument("--data", required=True, metavar="DIR", help="where the write log lives (survives a kill)")
    p.add_argument("--clock-file", default="", metavar="PATH", help="the harness's clock file (see wall_clock)")
    args = p.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    os.makedirs(args.data, exist_ok=True)
    store = Store(args.data)
    server = ThreadingHTTPServer((host, int(port)), make_handler(args.id, args.primary, store, args.clock_file))
    server.daemon_threads = True
    print(f"tinykv {args.id}: serving on {args.listen}, primary {args.primary}, {store.writes} writes replayed",
          file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
