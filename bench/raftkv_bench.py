"""Benchmark raftkv on 3 loopback processes (fsync on): write throughput/latency and leader failover time.

    .venv/bin/python bench/raftkv_bench.py [--trials 50] [--duration 5] [--clients 1,8,32]

Prints figures; it is not a test and asserts nothing except that the cluster
works. Throughput: N concurrent clients, each with one keep-alive HTTP
connection to the leader, issue PUTs back to back for --duration seconds;
we count acknowledged (200) writes and their latency. Failover: SIGKILL the
leader, then measure until some survivor has committed (acknowledged) a
write; restart the killed node and let it catch up before the next trial.

The machine's load matters (2 shared cores here): the CPU milliseconds each
write costs the nodes are printed too, a figure that does not depend on what
else is running.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time

from targets.raftkv.loopback import LocalCluster


class RawHttp:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams: light enough not to be the bottleneck."""

    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: dict | None = None,
                      timeout: float = 3.0) -> tuple[int, dict]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.port), timeout)
        data = b"" if body is None else json.dumps(body).encode()
        self.writer.write(f"{method} {path} HTTP/1.1\r\nHost: b\r\nContent-Length: {len(data)}\r\n\r\n"
                          .encode() + data)
        try:
            return await asyncio.wait_for(self._response(), timeout)
        except BaseException:
            self.close()
            raise

    async def _response(self) -> tuple[int, dict]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        length = 0
        for line in lines[1:]:
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        raw = await self.reader.readexactly(length)
        return status, json.loads(raw) if raw.startswith(b"{") else {}

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (Linux /proc): cost per write, whatever the machine's load."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


async def throughput(cluster: LocalCluster, clients: int, duration: float) -> dict:
    leader = cluster.wait_for_leader()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    stop_at = time.perf_counter() + duration

    async def worker(w: int) -> None:
        conn = RawHttp(cluster.client_ports[leader])
        i = 0
        while time.perf_counter() < stop_at:
            i += 1
            started = time.perf_counter()
            try:
                status, body = await conn.request("PUT", f"/kv/b{w}-{i % 100}", {"value": i})
            except (TimeoutError, OSError, asyncio.IncompleteReadError):
                status, body = None, {}
            if status == 200:
                latencies.append(time.perf_counter() - started)
                continue
            errors[str(status)] = errors.get(str(status), 0) + 1
            if status == 503 and body.get("leader") in cluster.client_ports:
                # leadership moved (an election on a loaded machine): follow it
                conn.close()
                conn = RawHttp(cluster.client_ports[body["leader"]])
            elif status == 503:
                await asyncio.sleep(0.01)
        conn.close()

    pids = {i: p.pid for i, p in cluster.procs.items() if p.poll() is None}
    cpu_before = {i: cpu_seconds(pid) for i, pid in pids.items()}
    began = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(clients)))
    elapsed = time.perf_counter() - began
    cpu_ms = {i: (cpu_seconds(pid) - cpu_before[i]) * 1000 for i, pid in pids.items()}
    latencies.sort()
    return {"clients": clients, "acked": len(latencies), "errors": sum(errors.values()),
            "error_kinds": errors, "leader": leader,
            "leader_cpu_ms_per_write": cpu_ms[leader] / max(1, len(latencies)),
            "cluster_cpu_ms_per_write": sum(cpu_ms.values()) / max(1, len(latencies)),
            "per_s": len(latencies) / elapsed, "p50_ms": pct(latencies, 50) * 1000,
            "p99_ms": pct(latencies, 99) * 1000}


async def first_committed_write(cluster: LocalCluster, survivors: list[str], tag: str,
                                timeout: float = 10.0) -> float:
    """Poll survivors with a write until one acknowledges it; the time of that acknowledgement."""
    conns = {i: RawHttp(cluster.client_ports[i]) for i in survivors}
    deadline = time.perf_counter() + timeout
    target = None
    n = 0
    try:
        while time.perf_counter() < deadline:
            candidates = [target] if target else survivors
            for node_id in candidates:
                n += 1
                try:
                    status, body = await conns[node_id].request(
                        "PUT", f"/kv/failover-{tag}", {"value": n, "request_id": f"{tag}-{n}"},
                        timeout=1.0)
                except (TimeoutError, OSError, asyncio.IncompleteReadError):
                    continue
                if status == 200:
                    return time.perf_counter()
                hint = body.get("leader") if status == 503 else None
                target = hint if hint in survivors else None
            await asyncio.sleep(0.002)
        raise TimeoutError("no survivor committed a write within the timeout")
    finally:
        for c in conns.values():
            c.close()


async def failover_trial(cluster: LocalCluster, trial: int) -> float:
    leader = cluster.wait_for_leader(timeout=10)
    cluster.put_via_leader("warm", trial)  # the leader is committing in its term
    survivors = [i for i in cluster.ids if i != leader]
    killed_at = time.perf_counter()
    cluster.kill(leader)
    committed_at = await first_committed_write(cluster, survivors, str(trial))
    # bring the node back and let it catch up so the next trial starts with 3 nodes
    cluster.start(leader)
    cluster.wait_until_serving(leader)
    new_leader = cluster.wait_for_leader(timeout=10, among=survivors)
    cluster.wait_for_applied(leader, cluster.status(new_leader)["commit_index"], timeout=15)
    return committed_at - killed_at


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=50, help="failover trials (default 50)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per throughput run")
    p.add_argument("--clients", default="1,8,32", help="comma-separated client counts")
    p.add_argument("--election-timeout", default="150-300")
    p.add_argument("--no-fsync", action="store_true", help="run the nodes without fsync (comparison)")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-failover", action="store_true")
    args = p.parse_args()

    with LocalCluster(3, election_timeout=args.election_timeout, fsync=not args.no_fsync) as cluster:
        cluster.start_all()
        cluster.wait_for_leader()
        print(f"raftkv bench: 3 loopback nodes, fsync {'off' if args.no_fsync else 'on'}, "
              f"election timeout {args.election_timeout} ms", flush=True)
        if not args.skip_throughput:
            print(f"\nwrites (PUT), {args.duration:g} s per run, keep-alive connections to the leader")
            print(f"{'clients':>8} {'acked':>8} {'errors':>7} {'writes/s':>10} {'p50 ms':>8} {'p99 ms':>8}"
                  f" {'cpu ms/write (leader, all nodes)':>34}")
            for n in (int(x) for x in args.clients.split(",")):
                r = asyncio.run(throughput(cluster, n, args.duration))
                kinds = " ".join(f"{k}:{v}" for k, v in sorted(r["error_kinds"].items()))
                print(f"{r['clients']:>8} {r['acked']:>8} {r['errors']:>7} {r['per_s']:>10.0f} "
                      f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['leader_cpu_ms_per_write']:>20.3f}"
                      f" {r['cluster_cpu_ms_per_write']:>13.3f}  {kinds}", flush=True)
        if not args.skip_failover and args.trials > 0:
            print(f"\nfailover: SIGKILL the leader, until a survivor commits a write ({args.trials} trials)")
            times = []
            for t in range(args.trials):
                ms = asyncio.run(failover_trial(cluster, t)) * 1000
                times.append(ms)
                print(f"  trial {t + 1:>3}: {ms:7.1f} ms", flush=True)
            times.sort()
            print(f"failover ms: min {times[0]:.1f}  median {statistics.median(times):.1f}  "
                  f"p99 {pct(times, 99):.1f}  max {times[-1]:.1f}  (n={len(times)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
