"""What one raftkv peer frame costs: two PeerTransports in one process on loopback, no Raft.

    .venv/bin/python bench/raftkv_transport_bench.py [--frames 50000] [--snapshot-mb 8] [--repeat 3]

One transport sends, the other receives, both in this process, so the CPU
time per frame is the whole cost of a frame: encoding (JSON, MAC), the
socket, and decoding and checking it on the other side. Two shapes: an
append carrying one client write (what replication sends per write) and an
empty heartbeat. The sender queues `--batch` frames, then yields, as the
node's driver does after a Ready. Then one snapshot-sized message
(`--snapshot-mb` of state): the time until it is delivered, and the
receiver's peak RSS growth while it is.

Prints CPU microseconds per frame (user + system of this process, a figure
that does not depend much on what else runs), wall frames/s, and the load
average. It uses only the transport's public API (PeerTransport(id, peers,
key, deliver), start, send, close), so the same script measures any version.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from targets.raftkv.transport import PeerTransport  # noqa: E402

KEY = b"k" * 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def append(i: int) -> dict:
    write = {"f": "put", "key": f"k{i % 100}", "value": i, "request_id": "0123456789abcdef0123456789abcdef"}
    return {"type": "append", "src": "n1", "dst": "n2", "term": 7, "prev_index": i, "prev_term": 7,
            "entries": [{"index": i + 1, "term": 7, "kind": "op", "data": {"op": write}}], "commit": i, "seq": i}


def heartbeat(i: int) -> dict:
    return {"type": "append", "src": "n1", "dst": "n2", "term": 7, "prev_index": 1000, "prev_term": 7,
            "entries": [], "commit": 1000, "seq": i}


def snapshot(mb: float) -> dict:
    n = int(mb * 1024 * 1024 / 40)
    state = {f"key-{i:08d}": f"value-{i:016d}" for i in range(n)}
    return {"type": "snapshot", "src": "n1", "dst": "n2", "term": 7, "seq": 1,
            "snapshot": {"index": 10**6, "term": 7, "state": state, "members": ["n1", "n2", "n3"]}}


async def connected_pair(got: list):
    peers = {"n1": ("127.0.0.1", free_port()), "n2": ("127.0.0.1", free_port())}
    t1 = PeerTransport("n1", peers, KEY, lambda m: None)
    t2 = PeerTransport("n2", peers, KEY, got.append)
    await t1.start()
    await t2.start()
    deadline = time.monotonic() + 10
    while not t1.send(heartbeat(0)):
        if time.monotonic() > deadline:
            raise SystemExit("the transports did not connect")
        await asyncio.sleep(0.01)
    while not got:
        await asyncio.sleep(0.001)
    got.clear()
    return t1, t2


async def stream(make, frames: int, batch: int) -> tuple[float, float]:
    """(CPU us per frame, wall frames/s) for `frames` messages made by make(i)."""
    got: list = []
    t1, t2 = await connected_pair(got)
    try:
        msgs = [make(i) for i in range(frames)]  # built before timing: the node builds them anyway
        cpu0, wall0 = time.process_time(), time.perf_counter()
        sent = 0
        while sent < frames:
            for m in msgs[sent:sent + batch]:
                if not t1.send(m):
                    raise SystemExit("a frame was dropped (queue full?): lower --batch")
            sent += batch
            await asyncio.sleep(0)
            while len(got) < sent - 4 * batch:
                await asyncio.sleep(0)
        while len(got) < frames:
            await asyncio.sleep(0)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        return cpu / frames * 1e6, frames / wall
    finally:
        await t1.close()
        await t2.close()


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def one_snapshot(mb: float) -> tuple[float, float, float]:
    """(seconds to deliver, RSS growth MB during it, size MB of its JSON)."""
    got: list = []
    t1, t2 = await connected_pair(got)
    try:
        msg = snapshot(mb)
        import json

        size = len(json.dumps(msg)) / 1024 / 1024
        before = rss_mb()
        peak = before
        t0 = time.perf_counter()
        t1.send(msg)
        while not got:
            peak = max(peak, rss_mb())
            await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - t0
        return elapsed, peak - before, size
    finally:
        await t1.close()
        await t2.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=50_000)
    p.add_argument("--batch", type=int, default=64, help="frames queued per driver turn (default 64)")
    p.add_argument("--repeat", type=int, default=3, help="runs per shape; the median is printed")
    p.add_argument("--snapshot-mb", type=float, default=8.0)
    args = p.parse_args()
    print(f"raftkv peer transport, {args.frames} frames per run, batches of {args.batch}, "
          f"median of {args.repeat}; load average {os.getloadavg()[0]:.1f}")
    for name, make in (("append with one write", append), ("heartbeat", heartbeat)):
        runs = [asyncio.run(stream(make, args.frames, args.batch)) for _ in range(args.repeat)]
        cpu = statistics.median(r[0] for r in runs)
        rate = statistics.median(r[1] for r in runs)
        print(f"  {name:24} {cpu:7.1f} us CPU/frame   {rate:9.0f} frames/s   "
              f"(runs: {', '.join(f'{r[0]:.1f}' for r in runs)} us)")
    if args.snapshot_mb > 0:
        secs, grew, size = asyncio.run(one_snapshot(args.snapshot_mb))
        print(f"  snapshot of {size:.1f} MB JSON: delivered in {secs * 1000:.0f} ms, "
              f"RSS +{grew:.0f} MB while in flight")
    print(f"load average at the end {os.getloadavg()[0]:.1f}; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
