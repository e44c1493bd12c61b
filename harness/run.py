"""The run loop: cluster up, clients + nemesis + observer into one history, heal, recover, final reads, teardown.

`RunLoop` knows no concrete target, fault or workload. It is handed a cluster
(up, copy_logs, teardown), a factory for the target's client, a factory for
the nemesis, a workload and a fault schedule, and it drives them on one
asyncio loop; the blocking Docker and nemesis calls run in threads via
`asyncio.to_thread` so the clients never wait on them. Every event goes
straight to the flushed history, with times from one monotonic clock that
starts when the run does.

Phases: up, warm-up (ops, no faults), faults (for the time limit, schedule
every interval), heal, recovery (the cluster must serve again within a
bound), final reads, teardown (always: normal end, exception, cancellation
by SIGINT/SIGTERM; node logs are copied first).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import signal
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.observer import Observer
from harness.progress import Progress, Snapshot
from harness.spec import TestSpec
from history.events import NEMESIS, OBSERVER, HistoryWriter
from nemesis.family import LEADER
from nemesis.guided import GuidedPlanner
from nemesis.registry import family
from nemesis.schedule import ScheduledOp
from workloads.base import Workload


class Cluster(Protocol):
    def up(self) -> dict[str, str]: ...
    def copy_logs(self, dest: Path) -> Any: ...
    def teardown(self) -> Any: ...


class Client(Protocol):
    async def invoke(self, node: str, op: dict[str, Any]) -> dict[str, Any]: ...
    async def status(self, node: str) -> dict[str, Any] | None: ...


class Nemesis(Protocol):
    def invoke(self, op: dict[str, Any]) -> dict[str, Any]: ...
    def heal_all(self) -> Any: ...


# Errors of the cluster, image and nemesis layers, whose messages are written for users.
INFRA_ERRORS = frozenset({"ClusterError", "ImageError", "NemesisError"})


class InfraError(Exception):
    """The harness could not do its job (a fault that did nothing, a cluster that never came up)."""


@dataclass
class PhaseStats:
    ok: int = 0
    fail: int = 0
    info: int = 0

    def add(self, kind: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)

    @property
    def total(self) -> int:
        return self.ok + self.fail + self.info

    def as_dict(self) -> dict[str, int]:
        return {"ok": self.ok, "fail": self.fail, "info": self.info}


@dataclass
class RunOutcome:
    """What happened during the run, besides the history itself."""

    phases: dict[str, float] = field(default_factory=dict)  # phase -> seconds since start it began
    durations: dict[str, float] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # phase -> ok/fail/info
    by_f: dict[str, dict[str, int]] = field(default_factory=dict)
    recovered: bool | None = None
    recovery_s: float | None = None
    final_reads: dict[str, int] = field(default_factory=dict)
    interrupted: str | None = None
    infra_error: str | None = None
    infra_error_traceback: str | None = None
    logs_error: str | None = None
    nemesis_ops: int = 0
    schedule_lag_max_s: float = 0.0
    observer_samples: int = 0
    processes: int = 0
    nodes: dict[str, str] = field(default_factory=dict)
    teardown_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class RunLoop:
    def __init__(
        self,
        spec: TestSpec,
        cluster: Cluster,
        open_client: Callable[[dict[str, str]], Client],
        open_nemesis: Callable[[dict[str, str]], Nemesis] | None,
        workload: Workload,
        schedule: list[ScheduledOp] | GuidedPlanner,
        history_path: Path,
        logs_dir: Path | None = None,
        progress: Progress | None = None,
        observer_interval: float = 0.05,
        handle_signals: bool = False,
    ):
        self.spec = spec
        self.cluster = cluster
        self.open_client = open_client
        self.open_nemesis = open_nemesis
        self.workload = workload
        # A guided schedule decides as the run goes (nemesis.guided); `played` is what was played either way.
        self.planner = schedule if isinstance(schedule, GuidedPlanner) else None
        self.schedule = [] if self.planner is not None else schedule
        self.played: list[ScheduledOp] = []
        self.logs_dir = logs_dir
        self.progress = progress or Progress(quiet=True)
        self.observer_interval = observer_interval
        self.handle_signals = handle_signals
        self._origin = time.monotonic_ns()
        self.history = HistoryWriter(history_path, clock=self._now_ns)
        self.outcome = RunOutcome()
        self.rng = random.Random(f"{spec.seed}:clients")
        self._process_ids = itertools.count(spec.concurrency)
        self._phase = "start"
        self._stats: dict[str, PhaseStats] = {}
        self._by_f: dict[str, Counter] = {}
        self._active_faults: dict[str, str] = {}  # family -> description
        self._fault_nodes: dict[str, list[str]] = {}  # family -> nodes its start op really hit
        self.nodes: list[str] = []
        self.client: Client | None = None
        self.nemesis: Nemesis | None = None
        self.observer: Observer | None = None

    # ------------------------------------------------------------------ clock

    def _now_ns(self) -> int:
        return time.monotonic_ns() - self._origin

    def elapsed(self) -> float:
        return self._now_ns() / 1e9

    def _enter(self, phase: str) -> None:
        self._phase = phase
        self.outcome.phases[phase] = round(self.elapsed(), 3)
        self._stats.setdefault(phase, PhaseStats())
        self.progress.message(f"splitbrain run: {phase} at {self.elapsed():.1f}s")

    # ------------------------------------------------------------------ entry

    def run(self) -> RunOutcome:
        """Run every phase; teardown always happens. Never raises for a run that went wrong:
        the outcome says how (infra_error, interrupted)."""
        try:
            asyncio.run(self._main())
        finally:
            self.history.close()
            self.progress.close()
        return self.outcome

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        installed = []
        if self.handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, self._interrupt, task, sig)
                    installed.append(sig)
                except (NotImplementedError, RuntimeError):
                    pass
        try:
            await self._phases()
        except asyncio.CancelledError:
            if self.outcome.interrupted is None:
                self.outcome.interrupted = "cancelled"
        except InfraError as e:
            self.outcome.infra_error = str(e)
        except Exception as e:  # a bug or an infrastructure failure: keep the evidence
            # The infrastructure's own errors already say what to do; anything else may be a bug.
            plain = type(e).__name__ in INFRA_ERRORS
            self.outcome.infra_error = str(e) if plain else f"{type(e).__name__}: {e}"
            self.outcome.infra_error_traceback = traceback.format_exc()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            # A second signal during teardown must not leave containers behind.
            old = {s: signal.signal(s, signal.SIG_IGN) for s in installed}
            try:
                await self._teardown()
            finally:
                for s, h in old.items():
                    signal.signal(s, h)
            self._finish_counts()

    def _interrupt(self, task: asyncio.Task, sig: signal.Signals) -> None:
        self.outcome.interrupted = signal.Signals(sig).name
        task.cancel()

    # ------------------------------------------------------------------ phases

    async def _phases(self) -> None:
        spec = self.spec
        self._enter("up")
        # Shielded: a SIGINT during bring-up must not leave the thread creating
        # containers while teardown runs; teardown waits for it instead.
        self._up_future = asyncio.ensure_future(asyncio.to_thread(self.cluster.up))
        node_map = await asyncio.shield(self._up_future)
        self.outcome.nodes = dict(node_map)
        self.nodes = sorted(node_map)
        self.client = self.open_client(node_map)
        if self.open_nemesis is not None:
            self.nemesis = await asyncio.to_thread(self.open_nemesis, node_map)
        self.observer = Observer(self.nodes, self.client.status, self._record_observation, self.observer_interval)
        observer_task = asyncio.create_task(self.observer.run(), name="observer")
        progress_task = asyncio.create_task(self._show_progress(), name="progress")
        try:
            stop_clients = asyncio.Event()
            self._enter("warmup")
            workers = [asyncio.create_task(self._worker(i, stop_clients), name=f"client-{i}") for i in range(spec.concurrency)]
            try:
                await asyncio.sleep(spec.warmup)
                self._enter("faults")
                faults_started = loop_time = asyncio.get_running_loop().time()
                await asyncio.gather(self._run_schedule(faults_started), self._sleep_until(loop_time + spec.time_limit))
            finally:
                stop_clients.set()
                await asyncio.gather(*workers, return_exceptions=True)
            self._enter("heal")
            await self._heal()
            self._enter("recovery")
            await self._recover()
            self._enter("final")
            await self._final_reads()
            self._enter("done")
        finally:
            self.observer.stop()
            progress_task.cancel()
            await asyncio.gather(observer_task, progress_task, return_exceptions=True)
            self.outcome.observer_samples = self.observer.samples
            self._show(force=True)

    async def _sleep_until(self, when: float) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, when - loop.time()))

    async def _show_progress(self) -> None:
        period = 0.5 if self.progress.tty else 1.0
        while True:
            self._show()
            await asyncio.sleep(period)

    def _show(self, force: bool = False) -> None:
        total = PhaseStats()
        for s in self._stats.values():
            total.ok += s.ok
            total.fail += s.fail
            total.info += s.info
        leader = self.observer.leader() if self.observer else None
        snap = Snapshot(self.elapsed(), self._phase, total.ok, total.fail, total.info,
                        list(self._active_faults.values()), leader)
        self.progress.show(snap, force=force)

    # ------------------------------------------------------------------ recording

    def _record_observation(self, node: str, value: dict[str, Any] | None) -> None:
        if self.planner is not None:  # from the start, so it knows every node before the first step
            self.planner.observe(node, value)
        self.history.append("ok" if value is not None else "info", OBSERVER, "status", node=node, value=value)

    def _count(self, kind: str, f: str) -> None:
        if self.planner is not None and self._phase == "faults":
            self.planner.client(kind)
        self._stats.setdefault(self._phase, PhaseStats()).add(kind)
        self._by_f.setdefault(f, Counter())[kind] += 1

    async def _call(self, process: int, node: str, op: dict[str, Any], timeout: float | None = None) -> str:
        """Invoke one client operation and record invoke and completion; returns ok | fail | info.

        The harness's own timeout is a little longer than the client's, so the
        client's finer classification (a refused connect is a fail) usually wins."""
        assert self.client is not None
        f, key, value = op["f"], op.get("key"), op.get("value")
        self.history.append("invoke", process, f, key=key, value=value, node=node)
        extra: dict[str, Any] = {}
        try:
            limit = timeout if timeout is not None else self.spec.op_timeout + 0.25
            result = await asyncio.wait_for(self.client.invoke(node, op), limit)
            kind = result.get("type")
            if kind not in ("ok", "fail", "info"):
                kind, extra["error"] = "info", f"client returned type {kind!r}"
            # A read's completion carries what it read; anything else echoes what was asked.
            out = result.get("value") if kind == "ok" and f == "read" else value
            if result.get("error") is not None:
                extra["error"] = result["error"]
            # A client that routes for itself (a failover manager's current primary) says which node
            # served the op: the completion carries it, and an operation's node is its completion's.
            if isinstance(result.get("node"), str) and result["node"] in self.nodes:
                node = result["node"]
        except TimeoutError:
            kind, out, extra["error"] = "info", value, "timeout"
        except asyncio.CancelledError:
            self.history.append("info", process, f, key=key, value=value, node=node, error="interrupted")
            self._count("info", f)
            raise
        except Exception as e:  # an unknown outcome is never a failure
            kind, out, extra["error"] = "info", value, f"{type(e).__name__}: {e}"
        self.history.append(kind, process, f, key=key, value=out, node=node, **extra)
        self._count(kind, f)
        self.workload.completed(op, {"type": kind, "value": out})
        return kind

    def _new_process(self) -> int:
        self.outcome.processes += 1
        return next(self._process_ids)

    # ------------------------------------------------------------------ clients

    def _pinned(self, slot: int) -> bool:
        """Does this slot stay on its node whatever happens? Pinned clients keep talking
        to a deposed or isolated leader, which is where stale reads and dual-serving
        show; the others follow the leader, which keeps the load realistic."""
        routing = self.spec.routing
        if routing == "pinned":
            return True
        if routing == "leader":
            return False
        return slot < min(len(self.nodes), self.spec.concurrency // 2)

    async def _worker(self, slot: int, stop: asyncio.Event) -> None:
        """One client slot: issues ops at its share of the rate; after an info it carries on as a new process."""
        loop = asyncio.get_running_loop()
        process = slot
        self.outcome.processes += 1
        node_i = slot % len(self.nodes)
        pinned = self._pinned(slot)
        period = self.spec.concurrency / self.spec.rate
        # Stagger the slots so they do not all fire at once.
        next_at = loop.time() + self.rng.random() * period
        while not stop.is_set():
            now = loop.time()
            if next_at > now:
                try:
                    await asyncio.wait_for(stop.wait(), next_at - now)
                    return
                except TimeoutError:
                    pass
            elif now - next_at > 5 * period:
                next_at = now  # far behind (a long timeout): do not burst to catch up
            next_at += period
            # The slot rides along so a target can keep a session per client, as each process of an
            # application has its own (ZooKeeper orders a session's reads behind its pending writes).
            op = {**self.workload.next_op(), "client": slot}
            kind = await self._call(process, self.nodes[node_i], op)
            if kind == "info":
                process = self._new_process()
            if kind != "ok" and not pinned:
                # The node may be down or not the leader: go to the leader the observer
                # last saw if that is another node, else to the next node.
                leader = self.observer.leader() if self.observer else None
                # A refusal by the leader itself (cas mismatch) keeps the worker where it is.
                if leader is not None and self.rng.random() < 0.8:
                    if leader in self.nodes:
                        node_i = self.nodes.index(leader)
                else:
                    node_i = (node_i + 1) % len(self.nodes)

    # ------------------------------------------------------------------ nemesis

    def _resolve(self, step: ScheduledOp) -> dict[str, Any]:
        """The concrete op: the symbolic leader replaced, a stop aimed at the nodes its start hit."""
        op = step.op()
        value = op.get("value")
        if isinstance(value, dict) and isinstance(value.get("nodes"), list):
            nodes = list(value["nodes"])
            if LEADER in nodes:
                leader = self.observer.leader() if self.observer else None
                if leader is None:
                    leader = self.rng.choice(self.nodes)
                nodes = [leader if n == LEADER else n for n in nodes]
            op["value"] = {**value, "nodes": nodes}
        return op

    async def _run_schedule(self, started: float) -> None:
        if not self.schedule and self.planner is None:
            return
        if self.nemesis is None:
            raise InfraError("the schedule has faults but there is no nemesis")
        if self.planner is None:
            for step in self.schedule:
                await self._play(step, started)
            return
        # Guided: each step's ops are decided when it falls due, from what the step before it saw.
        for at in self.planner.steps():
            await self._sleep_until(started + at)
            for step in self.planner.decide(at):
                await self._play(step, started)
        await self._sleep_until(started + self.spec.time_limit)
        for step in self.planner.finish():
            await self._play(step, started)

    async def _play(self, step: ScheduledOp, started: float) -> None:
        loop = asyncio.get_running_loop()
        due = started + step.at
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        if not step.follows:
            lag = loop.time() - due
            self.outcome.schedule_lag_max_s = max(self.outcome.schedule_lag_max_s, round(lag, 4))
        self.played.append(step)
        fam = family(step.family)
        op = self._resolve(step)
        stopping = step.f == fam.stop_op
        if stopping and step.family in self._fault_nodes:
            op = fam.aim_stop(op, self._fault_nodes.pop(step.family))
        completion = await self._nemesis_op(op)
        if stopping:
            self._active_faults.pop(step.family, None)
            return
        hit = fam.hit(op, completion.get("value"))
        if hit is not None:
            self._fault_nodes[step.family] = hit
        self._active_faults[step.family] = fam.describe(op)

    async def _nemesis_op(self, op: dict[str, Any], call: Callable[[], Any] | None = None) -> dict[str, Any]:
        """Invoke one nemesis op in a thread, record invoke and completion (with its evidence)."""
        assert self.nemesis is not None
        f, value = op["f"], op.get("value")
        self.history.append("invoke", NEMESIS, f, value=value)
        self.outcome.nemesis_ops += 1
        try:
            if call is None:
                result = await asyncio.to_thread(self.nemesis.invoke, dict(op))
            else:
                result = await asyncio.to_thread(call)
        except Exception as e:
            self.history.append("info", NEMESIS, f, value=value, error=f"{type(e).__name__}: {e}")
            raise InfraError(f"nemesis {f} failed: {e}") from e
        result = result if isinstance(result, dict) else {"value": result}
        kind = result.get("type", "info")
        if kind not in ("ok", "fail", "info"):
            kind = "info"
        extra = {k: v for k, v in result.items() if k not in ("type", "value", "f", "process", "index", "time", "key", "node")}
        self.history.append(kind, NEMESIS, f, value=result.get("value", value), **_jsonable(extra))
        return result

    async def _heal(self) -> None:
        if self.nemesis is None:
            return
        await self._nemesis_op({"f": "heal", "value": None}, call=self.nemesis.heal_all)
        self._active_faults.clear()
        self._fault_nodes.clear()

    # ------------------------------------------------------------------ after the faults

    async def _recover(self) -> None:
        """The cluster must serve an operation again within recovery_limit seconds of the heal."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.spec.recovery_limit
        # Ordinary workload ops, one at a time, until one is ok: serving means acknowledging
        # what clients ask, and the history stays one workload's history.
        process = self._new_process()
        i = 0
        while True:
            probe = self.workload.next_op()
            kind = await self._call(process, self.nodes[i % len(self.nodes)], probe)
            if kind == "ok":
                self.outcome.recovered = True
                self.outcome.recovery_s = round(loop.time() - started, 3)
                return
            if kind == "info":
                process = self._new_process()
            i += 1
            if loop.time() >= deadline:
                self.outcome.recovered = False
                return
            await asyncio.sleep(0.05)

    async def _final_reads(self) -> None:
        """Every final op until it succeeds on some node, in parallel, within recovery_limit."""
        ops = self.workload.final_ops()
        loop = asyncio.get_running_loop()
        final_timeout = max(10 * self.spec.op_timeout, 30.0)
        deadline = loop.time() + max(self.spec.recovery_limit, 5.0) + final_timeout
        queue: asyncio.Queue = asyncio.Queue()
        for op in ops:
            queue.put_nowait(op)
        done = Counter()

        async def reader(slot: int) -> None:
            process = self._new_process()
            i = slot
            while True:
                try:
                    op = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                while True:
                    # A read of everything (a whole set) may be many requests: give it time.
                    kind = await self._call(process, self.nodes[i % len(self.nodes)], op, timeout=final_timeout)
                    if kind == "info":
                        process = self._new_process()
                    if kind == "ok":
                        done["ok"] += 1
                        break
                    i += 1
                    if loop.time() >= deadline:
                        done["gave-up"] += 1
                        break
                    await asyncio.sleep(0.02)

        await asyncio.gather(*(reader(s) for s in range(max(1, min(self.spec.concurrency, len(ops))))))
        self.outcome.final_reads = {"ops": len(ops), "ok": done["ok"], "gave_up": done["gave-up"]}

    async def _teardown(self) -> None:
        self._phase = "teardown"
        self.outcome.phases["teardown"] = round(self.elapsed(), 3)
        started = time.monotonic()
        up = getattr(self, "_up_future", None)
        if up is not None and not up.done():
            try:
                await asyncio.wait_for(up, 120)
            except BaseException:
                pass
        if self.logs_dir is not None:
            try:
                await asyncio.to_thread(self.cluster.copy_logs, self.logs_dir)
            except Exception as e:
                self.outcome.logs_error = f"{type(e).__name__}: {e}"
        try:
            await asyncio.to_thread(self.cluster.teardown)
        except Exception as e:
            msg = f"teardown failed: {type(e).__name__}: {e}"
            self.outcome.infra_error = self.outcome.infra_error or msg
        self.outcome.teardown_s = round(time.monotonic() - started, 3)
        closer = getattr(self.client, "close", None)
        if closer is not None:
            try:
                r = closer()
                if asyncio.iscoroutine(r):
                    await r
            except Exception:
                pass

    def _finish_counts(self) -> None:
        phases = list(self.outcome.phases)
        for i, p in enumerate(phases):
            end = self.outcome.phases[phases[i + 1]] if i + 1 < len(phases) else round(self.elapsed(), 3)
            self.outcome.durations[p] = round(end - self.outcome.phases[p], 3)
        self.outcome.counts = {p: s.as_dict() for p, s in self._stats.items() if s.total}
        self.outcome.by_f = {f: dict(c) for f, c in self._by_f.items()}


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    import json

    out = {}
    for k, v in d.items():
        try:
            json.dumps(v, allow_nan=False)
            out[k] = v
        except (TypeError, ValueError):
            out[k] = repr(v)
    return out
