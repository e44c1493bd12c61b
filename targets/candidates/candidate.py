"""One election candidate: campaign through a recipe, and while it believes it leads, do leader work.

Runs as the main process of its own container (python3 -m targets.candidates.candidate), so the
nemesis pauses, kills and skews it like any node. Standard library plus the recipe's client library.

Every claim is journaled before anything else happens, as history-shaped records (type, f, value) in
`<data>/journal.jsonl`, which survives a kill; the harness collects them over HTTP (GET /journal?from=N)
and writes them into the run's history. Each record carries two stamps:

- "at": time.monotonic_ns() of the host (containers share the kernel's CLOCK_MONOTONIC, and the
  candidate runs with FAKETIME_DONT_FAKE_MONOTONIC=1, so no clock fault moves it): the harness
  subtracts its run origin and gets the history's clock.
- "local": time.time(), the candidate's own wall clock, which the clock nemesis does skew. The recipe
  keeps its believed deadline on this clock, the way applications do, so a skewed holder really does
  believe too long (or too short); the checker maps that deadline back with the nemesis's offsets.

Leader work is a loop: check that the recipe still holds, "compute" for --work-ms (a docker pause
usually lands here: the check passed, the write is yet to come, Kleppmann's GC pause), then send one
write carrying the token and believed deadline to the shared resource, which decides and records.
GET /status says {"role": "leader"|"candidate", "term": token, "leader", "wall_time"}: the nemesis's
"leader" is the holder, and the clock nemesis verifies a skew through wall_time.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from targets.candidates.recipes import load as load_recipe


def _sleep(seconds: float) -> None:
    select.select([], [], [], max(0.0, seconds))


# Under libfaketime with the monotonic clock left alone, Python's time.sleep (clock_nanosleep on an
# absolute CLOCK_MONOTONIC deadline) fails with EINVAL in Debian 12's libfaketime 0.9.10; a select
# timeout is relative and unaffected. Replaced before any recipe's client library is imported, so
# kazoo's own sleeps get it too.
time.sleep = _sleep


def _parses(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _is_start(line: str) -> bool:
    doc = json.loads(line)
    return doc.get("f") == "start" and doc.get("type") == "ok"


class Journal:
    """Append-only claims, in memory and on disk; a restarted candidate continues it as a new incarnation."""

    def __init__(self, path: str, me: str):
        self.path = path
        self.lock = threading.Lock()
        self.lines: list[str] = []
        torn = False
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                raw = f.read()
            torn = bool(raw) and not raw.endswith("\n")  # killed mid-write: that record never happened
            self.lines = [line for line in raw.splitlines() if _parses(line)]
        self.incarnation = 1 + sum(1 for line in self.lines if _is_start(line))
        self.me = me
        self.sub = 0  # a process that ended in info never acts again: the next one gets a new number
        self.file = open(path, "a", encoding="utf-8")
        if torn:
            self.file.write("\n")
        self.record("start", "invoke", {"incarnation": self.incarnation})
        self.record("start", "ok", {"incarnation": self.incarnation})

    @property
    def process(self) -> str:
        return f"{self.me}.{self.incarnation}" + (f".{self.sub}" if self.sub else "")

    def record(self, f: str, kind: str, value: dict | None = None) -> None:
        doc = {"type": kind, "f": f, "process": self.process,
               "value": {**(value or {}), "at": time.monotonic_ns(), "local": time.time()}}
        line = json.dumps(doc, sort_keys=True)
        with self.lock:
            self.file.write(line + "\n")
            self.file.flush()
            os.fsync(self.file.fileno())
            self.lines.append(line)
        if kind == "info":
            self.sub += 1

    def claim(self, f: str, value: dict) -> None:
        """A claim that happens at once (renew, release, lost): invoke and ok together."""
        self.record(f, "invoke", {})
        self.record(f, "ok", value)

    def since(self, n: int) -> list[str]:
        with self.lock:
            return self.lines[n:]


class State:
    def __init__(self, me: str):
        self.me = me
        self.token = None
        self.holding = False


def serve(port: int, journal: Journal, state: State) -> None:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # the container's log is for the candidate's own lines
            pass

        def do_GET(self):
            url = urlparse(self.path)
            if url.path == "/status":
                body = {"role": "leader" if state.holding else "candidate", "term": state.token or 0,
                        "leader": state.me if state.holding else None, "wall_time": time.time()}
            elif url.path == "/journal":
                start = int((parse_qs(url.query).get("from") or ["0"])[0])
                body = {"from": start, "records": [json.loads(x) for x in journal.since(start)]}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the harness gave up on this answer (its probe timed out): it asks again

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()


def write_resource(url: str, doc: dict, timeout: float) -> str:
    """One unit of leader work; the resource decides and records it. accepted | rejected | unknown."""
    req = urllib.request.Request(url + "/write", data=json.dumps(doc).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read()).get("result", "unknown")
    except Exception:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--id", required=True)
    p.add_argument("--recipe", required=True)
    p.add_argument("--servers", required=True, help="id=ip:port,... of the coordination service")
    p.add_argument("--resource", required=True, help="http://ip:port of the shared resource")
    p.add_argument("--ttl", type=float, default=2.0, help="lease TTL / session timeout, seconds")
    p.add_argument("--work-ms", type=float, default=200.0, help="time between the check and the write")
    p.add_argument("--gap-ms", type=float, default=50.0, help="pause between two units of work")
    p.add_argument("--data", default="/var/lib/splitbrain/data")
    p.add_argument("--port", type=int, default=8700)
    p.add_argument("--hold-s", type=float, default=8.0,
                   help="release voluntarily after leading this long (0: never), so leadership changes hands")
    p.add_argument("--watch-connection", action="store_true",
                   help="stop believing as soon as the session is suspended, not only when it is lost")
    args = p.parse_args(argv)
    servers = dict(s.split("=", 1) for s in args.servers.split(","))
    journal = Journal(os.path.join(args.data, "journal.jsonl"), args.id)
    state = State(args.id)
    serve(args.port, journal, state)
    print(f"candidate {args.id} incarnation {journal.incarnation}: recipe {args.recipe}", flush=True)
    kwargs = {"watch_connection": True} if args.watch_connection else {}
    recipe = load_recipe(args.recipe)(servers, args.id, args.ttl, **kwargs)
    seq = 0
    while True:
        journal.record("acquire", "invoke", {})
        try:
            got = recipe.acquire(timeout=max(3 * args.ttl, 5.0))
        except Exception as e:  # may or may not hold now: the outcome is unknown
            journal.record("acquire", "info", {"error": f"{type(e).__name__}: {e}"[:300]})
            time.sleep(0.2)
            continue
        if got is None:
            journal.record("acquire", "fail", {})
            time.sleep(0.1)
            continue
        token, deadline = got
        state.token, state.holding = token, True
        journal.record("acquire", "ok", {"token": token, "deadline": deadline})
        print(f"candidate {args.id}: leads with token {token}", flush=True)
        last_deadline = deadline
        since = time.monotonic()
        while True:
            if args.hold_s and time.monotonic() - since > args.hold_s:
                state.holding = False
                journal.claim("release", {"token": token, "why": "done"})
                break
            held, info = recipe.check()
            if not held:
                state.holding = False
                journal.claim("lost", {"token": token, "why": info})
                print(f"candidate {args.id}: lost token {token}: {info}", flush=True)
                break
            if info != last_deadline and info is not None:
                last_deadline = info
                journal.claim("renew", {"token": token, "deadline": info})
            time.sleep(args.work_ms / 1000.0)  # the leader's work between its check and its write
            seq += 1
            write_resource(args.resource, {"candidate": args.id, "token": token, "deadline": last_deadline,
                                           "seq": seq, "local": time.time()}, timeout=1.0)
            time.sleep(args.gap_ms / 1000.0)
        try:
            recipe.release()
        except Exception:
            pass
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
