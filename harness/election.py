"""An election run: the service's nodes, candidate nodes beside them, the shared resource, and the collector.

The smallest addition to an ordinary run that makes candidates nodes too:

- `ElectionCluster`: the target's `DockerCluster` (n1..nN), then, on the same network, a second
  DockerCluster of candidate containers (c1..cK, targets.candidates) that the nemesis drives. The
  run loop's observer still watches the service's nodes (the split-brain checker judges them as in any
  run); the nemesis gets the candidates (`nemesis_cluster`, `faulted_target`), so "leader" in a
  schedule means the holder, and a pause of the holder is the classic failure; with `nemesis_on:
  service` it gets the service's nodes instead, and "leader" is the service's own (a Redis primary).
- `ResourceServer`: the shared resource (workloads.election.Resource) served by the harness on the
  network's gateway address, so no fault reaches it, and each decision is written into the history at
  once, on the history's clock. Candidates reach it as any other server of their network.
- `Collector`: polls every candidate's journal (GET /journal?from=N) and appends each record to the
  history, its "at" turned from the host's CLOCK_MONOTONIC into the history's clock (minus the run's
  origin). A paused candidate's records arrive when it thaws; their "at" says when they happened.
- `ElectionRunLoop`: the run loop with idle client workers, the collector running from bring-up to
  the end, the symbolic leader left for the nemesis to find among the candidates, recovery = some
  candidate acquires after the heal, and a final drain of every journal instead of final reads.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from harness.cluster import ClusterError, DockerCluster, run_sync
from harness.run import RunLoop
from nemesis.schedule import ScheduledOp
from targets.base import TargetOptions
from targets.candidates.plugin import PORT, Candidates
from targets.candidates.recipes import RECIPES
from workloads.election import CLAIM_KEY, Resource

SETUP_TIMEOUT_S = 30.0


class ResourceServer:
    """HTTP POST /write {"candidate", "token", ...} -> {"result": accepted|rejected}; each one into the history."""

    def __init__(self, fenced: bool):
        self.resource = Resource(fenced)
        self.history = None  # the run loop's HistoryWriter (set before any candidate starts)
        self._lock = threading.Lock()  # decision and its two events, in one piece
        self._server: ThreadingHTTPServer | None = None

    def record(self, doc: dict[str, Any]) -> bool:
        token, cand = doc.get("token"), str(doc.get("candidate"))
        with self._lock:
            ok, before = self.resource.decide(token)
            value = {"candidate": cand, "token": token, "deadline": doc.get("deadline"), "seq": doc.get("seq"),
                     "local": doc.get("local"), "fenced": self.resource.fenced, "highest": before}
            if self.history is not None:
                self.history.append("invoke", "resource", "work", key=CLAIM_KEY, value=value, node=cand)
                extra = {} if ok else {"error": f"stale token {token} < {before}"}
                self.history.append("ok" if ok else "fail", "resource", "work", key=CLAIM_KEY, value=value,
                                    node=cand, **extra)
        return ok

    def start(self, host: str) -> str:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                try:
                    doc = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                    body = {"result": "accepted" if outer.record(doc) else "rejected"}
                    code = 200
                except (ValueError, TypeError) as e:
                    body, code = {"error": str(e)}, 400
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        try:
            self._server = ThreadingHTTPServer((host, 0), Handler)
        except OSError as e:
            raise ClusterError(f"the shared resource cannot listen on the run network's gateway {host}: {e} "
                               "(the harness must run on the Docker host)") from None
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="resource", daemon=True).start()
        return f"http://{host}:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class ElectionCluster:
    """The service's nodes and the candidates on one network (see the module docstring); the run loop's Cluster."""

    def __init__(self, run_id: str, target, nodes: int, options: TargetOptions, workload, log=print):
        self.run_id = run_id
        self.target = target
        self.options = options
        self.workload = workload
        self.log = log
        self.servers = DockerCluster(run_id, target, nodes, options, log=log)
        self.nemesis_target = Candidates(workload.recipe, ttl=workload.ttl)
        self.candidates = DockerCluster(run_id, self.nemesis_target, workload.candidates, log=log,
                                        join=self.servers, node_prefix="c")
        self.resource = ResourceServer(workload.fencing == "on")
        self.node_ids = self.servers.node_ids
        # `nemesis_on: service` faults the service's nodes instead (a Redis primary killed under its lock).
        self.on_service = getattr(workload, "nemesis_on", "candidates") == "service"
        self.faulted_target = target if self.on_service else self.nemesis_target

    @property
    def nemesis_cluster(self) -> DockerCluster:
        return self.servers if self.on_service else self.candidates

    @property
    def addresses(self) -> dict[str, str]:
        return self.servers.addresses

    def up(self) -> dict[str, str]:
        ips = self.servers.up()
        self._setup()
        gateway = str(next(self.servers.subnet.hosts()))
        self.nemesis_target.servers = dict(self.servers.addresses)
        self.nemesis_target.service = self.servers
        self.nemesis_target.resource_url = self.resource.start(gateway)
        self.candidates.up()
        return ips

    def _setup(self) -> None:
        """The recipe's setup ops (a lease record), each until some node says ok, with the target's client."""
        ops = RECIPES[self.workload.recipe].setup
        if not ops:
            return

        async def setup() -> None:
            client = self.target.client(self.servers.addresses, timeout=1.0)
            try:
                deadline = time.monotonic() + SETUP_TIMEOUT_S
                for op in ops:
                    for i in range(10_000):
                        out = await client.invoke(self.servers.node_ids[i % len(self.servers.node_ids)], dict(op))
                        if out.get("type") == "ok":
                            break
                        if time.monotonic() > deadline:
                            raise ClusterError(f"election setup: {op['f']} {op.get('key')} never succeeded: {out}")
                        await asyncio.sleep(0.2)
            finally:
                await client.close()

        run_sync(setup())

    def copy_logs(self, dest: Path) -> Any:
        return [*self.servers.copy_logs(dest), *self.candidates.copy_logs(dest)]

    def teardown(self) -> None:
        self.resource.stop()
        try:
            self.candidates.teardown()
        finally:
            self.servers.teardown()


class Collector:
    """Every candidate's journal into the history (see the module docstring)."""

    def __init__(self, candidates: DockerCluster, history, origin_ns: int):
        self.candidates = candidates
        self.history = history
        self.origin_ns = origin_ns
        self.read: dict[str, int] = {}  # candidate -> journal lines collected
        self.acquired: list[tuple[int, str, Any]] = []  # (at, candidate, token) of every acquire ok
        self.records = 0

    async def poll_once(self, http, timeout: float = 0.5) -> int:
        nodes = sorted(self.candidates.ips)
        got = await asyncio.gather(*(self._poll(http, n, timeout) for n in nodes))
        return sum(got)

    async def _poll(self, http, node: str, timeout: float) -> int:
        start = self.read.get(node, 0)
        try:
            resp = await http.get(f"http://{self.candidates.ips[node]}:{PORT}/journal", params={"from": start},
                                  timeout=timeout)
            records = resp.json()["records"] if resp.status_code == 200 else []
        except Exception:  # paused, down, restarting: its journal waits on its disk
            return 0
        for r in records:
            value = dict(r.get("value") or {})
            if isinstance(value.get("at"), int):
                value["at"] -= self.origin_ns
            kind, f = r.get("type"), str(r.get("f"))
            self.history.append(kind, str(r.get("process")), f, key=CLAIM_KEY, value=value, node=node)
            if kind == "ok" and f == "acquire":
                self.acquired.append((value.get("at", 0), node, value.get("token")))
        self.read[node] = start + len(records)
        self.records += len(records)
        return len(records)

    async def run(self, stop: asyncio.Event, period: float = 0.1) -> None:
        import httpx

        async with httpx.AsyncClient() as http:
            while not stop.is_set():
                if self.candidates.ips:
                    await self.poll_once(http)
                try:
                    await asyncio.wait_for(stop.wait(), period)
                except TimeoutError:
                    pass
            # The last word of every candidate, after the heal: until a pass brings nothing new.
            for _ in range(20):
                if not self.candidates.ips or await self.poll_once(http, timeout=2.0) == 0:
                    break


class ElectionRunLoop(RunLoop):
    def __init__(self, spec, cluster: ElectionCluster, *args, **kwargs):
        super().__init__(spec, cluster, *args, **kwargs)
        cluster.resource.history = self.history
        self.collector = Collector(cluster.candidates, self.history, self._origin)
        self._collecting = asyncio.Event()
        self._collector_task: asyncio.Task | None = None

    async def _phases(self) -> None:
        self._collecting = asyncio.Event()
        self._collector_task = asyncio.create_task(self.collector.run(self._collecting), name="collector")
        try:
            await super()._phases()
        finally:
            self._collecting.set()
            await asyncio.gather(self._collector_task, return_exceptions=True)
            self.outcome.final_reads = {"journal_records": self.collector.records,
                                        "acquisitions": len(self.collector.acquired)}

    async def _worker(self, slot: int, stop: asyncio.Event) -> None:
        return  # the candidates are the clients

    def _resolve(self, step: ScheduledOp) -> dict[str, Any]:
        # "leader" stays symbolic: the nemesis asks the candidates which one holds (role leader, highest token).
        return step.op()

    async def _recover(self) -> None:
        """Some candidate must acquire leadership within recovery_limit seconds of the heal."""
        loop = asyncio.get_running_loop()
        started, healed_at = loop.time(), self._now_ns()
        while loop.time() - started < self.spec.recovery_limit:
            if any(at >= healed_at for at, _, _ in self.collector.acquired):
                self.outcome.recovered = True
                self.outcome.recovery_s = round(loop.time() - started, 3)
                return
            # A holder from before the heal that still holds has recovered too.
            statuses = await asyncio.to_thread(self.cluster.candidates.probe_all, 0.3)
            if any(s and s.get("role") == "leader" for s in statuses.values()):
                self.outcome.recovered = True
                self.outcome.recovery_s = round(loop.time() - started, 3)
                return
            await asyncio.sleep(0.2)
        self.outcome.recovered = False

    async def _final_reads(self) -> None:
        return  # the collector drains every journal when it stops


def election_parts(spec, target, log, workload, client_class):
    """Like harness.commands.run.docker_parts, for an election run: (cluster, candidate ids, client, nemesis).
    `client_class(target, addresses, timeout)`: the run's client of the service (its status for the observer)."""
    from nemesis.core import Nemesis

    run_id = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
    options = TargetOptions(bugs=spec.bugs, settings=dict(spec.options), client_timeout=spec.op_timeout)
    cluster = ElectionCluster(run_id, target, spec.nodes, options, workload, log=log)

    def open_client(node_ips):
        return client_class(target, cluster.addresses, spec.op_timeout)

    def open_nemesis(node_ips):
        return Nemesis(cluster.nemesis_cluster, cluster.faulted_target, list(spec.nemesis),
                       random.Random(f"{spec.seed}:nemesis"))

    return cluster, list(cluster.nemesis_cluster.node_ids), open_client, open_nemesis
