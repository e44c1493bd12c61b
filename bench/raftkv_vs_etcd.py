"""raftkv beside etcd on this machine: write throughput and latency, and leader failover, one side-by-side table.

    .venv/bin/python bench/raftkv_vs_etcd.py [--seed 1] [--trials 50] [--duration 5] [--clients 1,8,32]

Set-up: if there is no `etcd` on PATH, Debian's etcd-server (3.4.23 in
bookworm) is installed with apt-get first, and the bench says so. Then two
3-member clusters run side by side on 127.0.0.1, data dirs under /tmp, fsync
on both (raftkv fsyncs its WAL before it acknowledges; etcd does by default):

- raftkv: `python -m targets.raftkv` x3 (targets/raftkv/loopback.py),
  election timeout 150-300 ms, heartbeat 30 ms, 10 ms ticks;
- etcd: x3 (targets/etcd/loopback.py), --heartbeat-interval 30
  --election-timeout 150, which etcd randomizes over [150, 300) ms.

The same client code drives both; only the request differs: raftkv's
`PUT /kv/KEY {"value": V}`, etcd's v3 JSON gateway `POST /v3/kv/put` (key and
value base64). A write is acknowledged when the answer is a 200.

Throughput: N concurrent clients, each one keep-alive HTTP/1.1 connection to
the leader, write back to back for --duration s (after --warmup s not
counted); writes/s = acknowledged writes / elapsed, p50/p99 over their
latencies. The stores take turns at each client count (the order alternates
with every round), so a change in the machine's load falls on both.

Failover, --trials per store, the stores alternating trial by trial: wait for
a leader, acknowledge a write through it, wait a random delay in [0, 30 ms)
(the seed's; the kill falls anywhere in a heartbeat interval), SIGKILL the
leader, and from that instant probe each survivor with a fresh write every
--poll-ms (each on its own connection, none abandoned) until one of them is
acknowledged: the failover time. A fresh probe per interval matters for
etcd, whose follower forwards a write to the leader it last knew and waits
5 s if that one is dead; raftkv's follower holds a write while it knows no
leader. The killed member is restarted and caught up before the next trial.
--explain prints each trial's timeline from the survivors' logs (first
campaign, leader elected, acknowledged; how many campaigns).

The 1-, 5- and 15-minute load averages are printed before and after, and the
range of the 1-minute one over the run: the machine (2 shared cores here) is
part of every figure. Ratios are raftkv / etcd.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from targets.etcd.loopback import EtcdMissing, LocalEtcd, ensure_etcd, etcd_version
from targets.raftkv.loopback import LocalCluster

ELECTION_TIMEOUT = "150-300"  # raftkv's range; etcd's is --election-timeout 150, randomized over [150, 300)
ETCD_ELECTION_MS = 150
HEARTBEAT_MS = 30  # both
KILL_DELAY_MAX_S = 0.030  # one heartbeat: where in the leader's heartbeat interval the kill falls

# ---- the one client ---------------------------------------------------------------------------


class Http:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams (Content-Length or chunked answers)."""

    def __init__(self, port: int):
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.port), timeout)
        self.writer.write(f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        try:
            return await asyncio.wait_for(self._response(), timeout)
        except BaseException:
            self.close()  # never reuse a connection in an unknown state
            raise

    async def _response(self) -> tuple[int, bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        length, chunked = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if not chunked:
            return status, await self.reader.readexactly(length)
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._trailers()
                return status, b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    async def _trailers(self) -> None:
        while (await self.reader.readuntil(b"\r\n")) != b"\r\n":
            pass

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


CLIENT_ERRORS = (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)

# ---- the two stores ------------------------------------------------------------------------------


class Side:
    """One store's cluster, as the bench sees it."""

    name = "?"
    ids: list[str]

    cluster: Any  # LocalCluster or LocalEtcd: the same leader, procs and kill calls

    def port(self, node_id: str) -> int:
        return self.cluster.client_ports[node_id]

    def close(self) -> None:
        self.cluster.close()

    def write(self, key: str, value) -> tuple[str, str, bytes]: ...  # (method, path, body)

    def leader(self) -> str:
        return self.cluster.wait_for_leader(timeout=10)

    def pids(self) -> dict[str, int]:
        return {i: p.pid for i, p in self.cluster.procs.items() if p.poll() is None}

    def kill(self, node_id: str) -> None:
        self.cluster.kill(node_id)

    def restart(self, node_id: str, survivors: list[str]) -> None: ...
    def timeline(self, nodes: list[str], since_wall: float) -> list[tuple[float, str, str]]: ...

    def acked(self, status: int, body: bytes) -> bool:
        return status == 200


class RaftkvSide(Side):
    name = "raftkv"

    def __init__(self):
        self.cluster = LocalCluster(3, election_timeout=ELECTION_TIMEOUT, heartbeat=HEARTBEAT_MS, fsync=True)
        self.ids = self.cluster.ids
        self.cluster.start_all()
        self.cluster.wait_for_leader()

    def write(self, key, value):
        return "PUT", f"/kv/{key}", json.dumps({"value": value}).encode()

    def restart(self, node_id, survivors):
        c = self.cluster
        c.start(node_id)
        c.wait_until_serving(node_id)
        lead = c.wait_for_leader(timeout=10, among=survivors)
        c.wait_for_applied(node_id, c.status(lead)["commit_index"], timeout=15)

    # "2026-12-02T15:03:16.123 n1 INFO role follower -> precandidate (term 5)"
    _LINE = re.compile(r"^(\S+) (\S+) INFO role (\w+) -> (\w+)")

    def timeline(self, nodes, since_wall):
        out = []
        for node_id in nodes:
            for line in _read_lines(self.cluster.log_path(node_id)):
                mt = self._LINE.match(line)
                if mt:
                    at = datetime.strptime(mt.group(1), "%Y-%m-%dT%H:%M:%S.%f").timestamp()
                    if at >= since_wall:
                        out.append((at, node_id, mt.group(4)))
        return sorted(out)


class EtcdSide(Side):
    name = "etcd"

    def __init__(self, binary: str):
        self.cluster = LocalEtcd(3, heartbeat_ms=HEARTBEAT_MS, election_ms=ETCD_ELECTION_MS, binary=binary)
        self.ids = self.cluster.ids
        self.cluster.start_all()
        self.cluster.wait_for_leader(timeout=20)

    def write(self, key, value):
        body = {"key": base64.b64encode(key.encode()).decode(),
                "value": base64.b64encode(json.dumps(value).encode()).decode()}
        return "POST", "/v3/kv/put", json.dumps(body).encode()

    def restart(self, node_id, survivors):
        c = self.cluster
        c.start(node_id)
        c.wait_until_serving(node_id)
        c.wait_caught_up(node_id)

    # zap JSON: {"level":"info","ts":"2026-12-02T15:03:16.123Z",...,"msg":"8e9e... became candidate at term 3"}
    _ROLE = re.compile(r"became (pre-candidate|candidate|leader|follower) at term")

    def timeline(self, nodes, since_wall):
        out = []
        for node_id in nodes:
            for line in _read_lines(self.cluster.log_path(node_id)):
                if "became" not in line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                mt = self._ROLE.search(str(rec.get("msg", "")))
                if not mt:
                    continue
                at = _zap_time(str(rec.get("ts", "")))
                if at is not None and at >= since_wall:
                    out.append((at, node_id, mt.group(1).replace("-", "")))
        return sorted(out)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


def _zap_time(ts: str) -> float | None:
    try:
        dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


# ---- measurements --------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(sorted_values: list[float], p: float) -> float:
    """The nearest-rank percentile."""
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


@dataclass
class Throughput:
    acked: int = 0
    errors: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu_s: float = 0.0

    @property
    def per_s(self) -> float:
        return self.acked / self.elapsed if self.elapsed else float("nan")

    def p(self, q: float) -> float:
        return pct(sorted(self.latencies), q) * 1000


async def _drive(side: Side, clients: int, duration: float, warmup: float, tag: str, into: Throughput | None):
    leader = side.leader()
    pids = side.pids()
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration
    cpu_before: dict[int, float] = {}

    async def worker(w: int) -> None:
        conn = Http(side.port(leader))
        i = 0
        while (now := time.perf_counter()) < stop_at:
            i += 1
            method, path, body = side.write(f"b{tag}{w}-{i % 100}", i)
            try:
                status, raw = await conn.request(method, path, body, timeout=3.0)
            except CLIENT_ERRORS:
                status, raw = None, b""
            done = time.perf_counter()
            counted = into is not None and now >= measure_from and done <= stop_at
            if status is not None and side.acked(status, raw):
                if counted:
                    into.latencies.append(done - now)
                continue
            if counted:
                into.errors += 1
            await asyncio.sleep(0.01)
        conn.close()

    async def cpu_mark() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        cpu_before.update({pid: cpu_seconds(pid) for pid in pids.values()})

    marker = asyncio.ensure_future(cpu_mark())
    await asyncio.gather(*(worker(w) for w in range(clients)))
    await marker
    if into is not None:
        into.elapsed += duration
        into.cpu_s += sum(cpu_seconds(pid) - before for pid, before in cpu_before.items())


def throughput(side: Side, clients: int, duration: float, warmup: float, tag: str, into: Throughput) -> None:
    before = len(into.latencies)
    asyncio.run(_drive(side, clients, duration, warmup, tag, into))
    into.acked += len(into.latencies) - before


async def first_ack(side: Side, survivors: list[str], poll_s: float, killed_at: float, tag: str,
                    timeout: float = 15.0) -> tuple[float, str]:
    """Probe every survivor with a fresh write each poll_s from killed_at; (time, node) of the first 200."""
    won: asyncio.Future = asyncio.get_running_loop().create_future()
    attempts: set[asyncio.Task] = set()
    n = 0

    async def attempt(node_id: str, k: int) -> None:
        conn = Http(side.port(node_id))
        method, path, body = side.write(f"failover-{tag}", k)
        try:
            status, raw = await conn.request(method, path, body, timeout=timeout)
            if side.acked(status, raw) and not won.done():
                won.set_result((time.perf_counter(), node_id))
        except CLIENT_ERRORS:
            pass
        finally:
            conn.close()

    deadline = killed_at + timeout
    next_at = killed_at
    try:
        while not won.done():
            now = time.perf_counter()
            if now >= deadline:
                raise TimeoutError(f"{side.name}: no survivor acknowledged a write within {timeout:g} s")
            if now >= next_at:
                for node_id in survivors:
                    n += 1
                    task = asyncio.ensure_future(attempt(node_id, n))
                    attempts.add(task)
                    task.add_done_callback(attempts.discard)
                next_at += poll_s
            await asyncio.wait({won}, timeout=max(0.0, next_at - time.perf_counter()))
        return won.result()
    finally:
        for task in list(attempts):
            task.cancel()
        await asyncio.gather(*attempts, return_exceptions=True)


@dataclass
class Trial:
    ms: float
    acked_by: str
    events: list[tuple[float, str, str]]  # (ms after the kill, node, role it took)


def warm_write(side: Side, leader: str, tag: str) -> None:
    async def go() -> None:
        conn = Http(side.port(leader))
        try:
            for _ in range(100):
                method, path, body = side.write(f"warm-{tag}", 1)
                try:
                    status, raw = await conn.request(method, path, body, timeout=3.0)
                    if side.acked(status, raw):
                        return
                except CLIENT_ERRORS:
                    pass
                await asyncio.sleep(0.02)
            raise TimeoutError(f"{side.name}: the leader did not acknowledge a write")
        finally:
            conn.close()
    asyncio.run(go())


def failover_trial(side: Side, trial: int, rng: random.Random, poll_s: float) -> Trial:
    leader = side.leader()
    warm_write(side, leader, str(trial))  # the leader is committing in its term, the followers just heard it
    survivors = [i for i in side.ids if i != leader]
    time.sleep(rng.uniform(0, KILL_DELAY_MAX_S))
    killed_wall = time.time()
    killed_at = time.perf_counter()
    side.kill(leader)
    acked_at, by = asyncio.run(first_ack(side, survivors, poll_s, killed_at, f"{trial}"))
    events = [((at - killed_wall) * 1000, node, role) for at, node, role in side.timeline(survivors, killed_wall)]
    side.restart(leader, survivors)
    return Trial((acked_at - killed_at) * 1000, by, events)


def explain(t: Trial) -> str:
    campaigns = [e for e in t.events if e[2] in ("precandidate", "candidate")]
    first = min((e[0] for e in campaigns), default=float("nan"))
    elected = min((e[0] for e in t.events if e[2] == "leader"), default=float("nan"))
    steps = " ".join(f"{node}:{role}@{ms:.0f}" for ms, node, role in t.events)
    return (f"first campaign {first:6.1f}  leader {elected:6.1f}  acked {t.ms:6.1f} by {t.acked_by}"
            f"  ({len(campaigns)} campaign steps) {steps}")


# ---- the report -----------------------------------------------------------------------------------


def revision() -> str:
    """The checkout's commit (and whether it has changes), so a table can be tied to the code it measured."""
    import subprocess
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return (head or "?") + ("+changes" if dirty else "")


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class LoadWatch:
    """The 1-minute load average, sampled at each step of the bench: its range over the run."""

    def __init__(self):
        self.samples: list[float] = []

    def mark(self) -> None:
        self.samples.append(os.getloadavg()[0])

    def __str__(self) -> str:
        return f"{min(self.samples):.2f}-{max(self.samples):.2f}" if self.samples else "?"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="\n".join(__doc__.splitlines()[2:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=1,
                   help="seeds the kill delays (default 1); the elections' own randomness is each store's")
    p.add_argument("--trials", type=int, default=50, help="failover trials per store (default 50; 0 skips)")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per throughput run (default 5)")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each run (default 1)")
    p.add_argument("--rounds", type=int, default=1, help="throughput runs per store and client count (default 1)")
    p.add_argument("--clients", default="1,8,32", help="comma-separated client counts (default 1,8,32; '' skips)")
    p.add_argument("--poll-ms", type=float, default=5.0, help="failover probe interval per survivor (default 5)")
    p.add_argument("--explain", action="store_true", help="print each failover trial's timeline from the logs")
    p.add_argument("--only", choices=("raftkv", "etcd"), help="run one store (no ratios)")
    args = p.parse_args(argv)
    try:
        clients = [int(x) for x in args.clients.split(",") if x.strip()]
    except ValueError:
        p.exit(2, f"{p.prog}: error: --clients wants comma-separated integers, got {args.clients!r}\n")
    if args.trials < 0 or args.duration <= 0 or args.rounds < 1 or args.poll_ms <= 0 or any(c < 1 for c in clients):
        p.exit(2, f"{p.prog}: error: --trials >= 0, --duration > 0, --rounds >= 1, --poll-ms > 0, clients >= 1\n")

    binary = None
    if args.only != "raftkv":
        try:
            binary = ensure_etcd()
        except EtcdMissing as e:
            p.exit(2, f"{p.prog}: error: {e}\n")
    rng = random.Random(args.seed)
    load = LoadWatch()
    load.mark()
    started = datetime.now(UTC)
    print(f"raftkv vs etcd, {started:%Y-%m-%d %H:%M:%S} UTC, seed {args.seed}, {os.cpu_count()} CPUs, "
          f"load average {loadavg()}, raftkv at {revision()}, Python {sys.version.split()[0]}")
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(f"3 members each on 127.0.0.1, fsync on; raftkv: election timeout {ELECTION_TIMEOUT} ms, heartbeat "
          f"{HEARTBEAT_MS} ms; {etcd_version(binary) if binary else 'etcd'}: --heartbeat-interval {HEARTBEAT_MS} "
          f"--election-timeout {ETCD_ELECTION_MS} (randomized over [150, 300) ms)", flush=True)

    sides: list[Side] = []
    try:
        if args.only != "etcd":
            sides.append(RaftkvSide())
        if binary:
            sides.append(EtcdSide(binary))
        tput = {(s.name, c): Throughput() for s in sides for c in clients}
        for r in range(args.rounds):
            for c in clients:
                order = sides if r % 2 == 0 else sides[::-1]
                for s in order:
                    throughput(s, c, args.duration, args.warmup, f"{r}.", tput[(s.name, c)])
                    load.mark()
                    t = tput[(s.name, c)]
                    print(f"  round {r + 1} {s.name:>6} {c:>2} clients: {t.per_s:7.0f} writes/s so far", flush=True)
        trials: dict[str, list[Trial]] = {s.name: [] for s in sides}
        for k in range(args.trials):
            order = sides if k % 2 == 0 else sides[::-1]
            for s in order:
                t = failover_trial(s, k, rng, args.poll_ms / 1000)
                trials[s.name].append(t)
                line = explain(t) if args.explain else f"{t.ms:7.1f} ms"
                print(f"  trial {k + 1:>3} {s.name:>6}: {line}", flush=True)
            load.mark()
    finally:
        for s in sides:
            s.close()

    report(sides, clients, tput, trials, args, load)
    return 0


def report(sides, clients, tput, trials, args, load) -> None:
    names = [s.name for s in sides]
    both = len(names) == 2
    print(f"\nwrites: {args.duration:g} s x {args.rounds} per cell, keep-alive connections to the leader")
    head = f"{'clients':>7} {'':>6} " + " ".join(f"{n:>10}" for n in names) + (f" {'ratio':>7}" if both else "")
    print(head)
    for c in clients:
        cells = [tput[(n, c)] for n in names]
        rows = [("writes/s", [t.per_s for t in cells], "{:10.0f}"),
                ("p50 ms", [t.p(50) for t in cells], "{:10.1f}"),
                ("p99 ms", [t.p(99) for t in cells], "{:10.1f}"),
                ("cpu ms/w", [t.cpu_s * 1000 / t.acked if t.acked else float("nan") for t in cells], "{:10.2f}"),
                ("errors", [t.errors for t in cells], "{:10d}")]
        for label, vals, fmt in rows:
            line = f"{c:>7} {label:>8} " + " ".join(fmt.format(v) for v in vals)
            if both and label != "errors":
                line += f" {ratio(vals[0], vals[1]):>7}"
            print(line)
    if any(trials.values()):
        print(f"\nfailover ms: SIGKILL the leader until a survivor acknowledges a write "
              f"({args.trials} trials each, probe every {args.poll_ms:g} ms)")
        print(f"{'':>8} " + " ".join(f"{n:>10}" for n in names) + (f" {'ratio':>7}" if both else ""))
        stats = {}
        for n in names:
            ms = sorted(t.ms for t in trials[n])
            stats[n] = {"min": ms[0], "median": statistics.median(ms), "p99": pct(ms, 99), "max": ms[-1]}
        for key in ("min", "median", "p99", "max"):
            vals = [stats[n][key] for n in names]
            line = f"{key:>8} " + " ".join(f"{v:10.1f}" for v in vals)
            if both:
                line += f" {ratio(vals[0], vals[1]):>7}"
            print(line)
    if both:
        must_show(names, tput, trials)
    print(f"\nload average at the end {loadavg()}; 1-minute load over the run {load}")


def must_show(names, tput, trials) -> None:
    """Issue 15's bar, checked on this run's figures (a cell that was not measured is skipped)."""
    raftkv, etcd = names
    checks = []
    for c, bar in ((32, 1.0), (8, 0.9), (1, 0.9)):
        if (raftkv, c) in tput and tput[(etcd, c)].acked:
            r = tput[(raftkv, c)].per_s / tput[(etcd, c)].per_s
            checks.append((f"writes/s at {c} clients >= {bar:g}x etcd's", r, r >= bar))
    if (raftkv, 32) in tput and tput[(etcd, 32)].acked:
        r = tput[(raftkv, 32)].p(99) / tput[(etcd, 32)].p(99)
        checks.append(("p99 at 32 clients <= 1.5x etcd's", r, r <= 1.5))
    if trials.get(raftkv) and trials.get(etcd):
        for name, f in (("median", statistics.median), ("p99", lambda v: pct(v, 99))):
            r = f(sorted(t.ms for t in trials[raftkv])) / f(sorted(t.ms for t in trials[etcd]))
            checks.append((f"failover {name} <= etcd's", r, r <= 1.0))
    print("\nissue 15's bar:")
    for what, r, ok in checks:
        print(f"  {what:40} {r:5.2f}x  {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    sys.exit(main())
