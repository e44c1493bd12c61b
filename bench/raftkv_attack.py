"""raftkv's client API under attack (issue 17): one request, or a handful of connections, must not crash or depose a node.

A 3-node loopback cluster (real processes, no Docker). Before the attacks and
during each one, a writer measures PUT latency to the leader; after each
attack the bench checks that every node process is alive and that the
leader and term have not changed, and reads each node's RSS from /proc.

Attacks, each against the leader's client port (first, ``control``: no attack at all, the
writer alone for --control-s seconds, so that what the machine's load does to leadership and
latency is measured beside what an attack does):

- deep-json: PUTs whose value is nested 975 deep (2 KB; this made the node
  exit with RecursionError before) and 100,000 deep;
- big-bodies: 20 connections each sending a 16 MiB body (refused: over the
  limit) and 20 sending a body just under the limit (accepted), at once;
- slowloris: 200 connections dribbling a header line every second;
- pipelined-hangup: 1,000 pipelined GETs from a client that hangs up at once;
- bad-lengths: `Content-Length: +1_2`, two Content-Lengths, a 70 KB head;

and against the leader's peer port:

- peer-huge-lengths: 20 connections without the cluster key, each announcing
  the largest hello there is (or the old wire format's 64 MiB frame) and then
  streaming 16 MiB;
- peer-replay: a keyholder sends one authentic (stale-term, harmless) frame
  and replays it 200 times on the same connection, then replays the whole
  captured exchange on a new connection.

    .venv/bin/python bench/raftkv_attack.py [--slowloris-s 15] [--attacks big-state,...]

Prints one row per attack: nodes alive, leader and term before and after,
leader RSS before and after (MB), write latency p50/p99 before and during (ms)
and their ratios, the latest any node's driver handled a due tick during the
attack (``tick_late_ms``: the bucket of raftkv_tick_lateness_seconds it fell
in; an event-loop stall or a driver waiting on a write shows here, and past
the election timeout it costs leadership), how many nodes' snapshot index
moved during it (``snapshots``, and how many of those were installs), the load average at the
attack's end, and what the attacking requests got back.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from targets.raftkv.httpapi import MAX_BODY_BYTES  # noqa: E402
from targets.raftkv.loopback import LocalCluster, NodeClient, speak_to_peer_port  # noqa: E402
from targets.raftkv.transport import (  # noqa: E402
    CHALLENGE_BYTES,
    MAGIC,
    FrameWriter,
    encode_hello,
    hello_payload,
    link_key,
)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def tick_lateness(cluster: LocalCluster) -> dict[str, dict[float, float]]:
    """Each node's raftkv_tick_lateness_seconds buckets: upper bound (inf for +Inf) -> cumulative count."""
    out = {}
    for n in cluster.ids:
        m = cluster.metrics(n)
        out[n] = {float(k.split('"')[1].replace("+Inf", "inf")): v for k, v in m.items()
                  if k.startswith("raftkv_tick_lateness_seconds_bucket")}
    return out


def worst_lateness_ms(before: dict, after: dict) -> str:
    """Per node, the bucket its latest tick fell in between the two readings: "n1<=5 n2<=50" (ms)."""
    out = []
    for n, buckets in after.items():
        if not buckets:
            return "n/a"  # a build without the histogram
        grew = {b: c - before.get(n, {}).get(b, 0) for b, c in buckets.items()}
        total = grew.get(float("inf"), 0)
        # Counts are cumulative: the smallest bound that took every new sample bounds the largest one.
        worst = min(b for b, g in grew.items() if g == total) if total else 0.0
        out.append(f"{n}>1000" if worst == float("inf") else f"{n}<={worst * 1000:g}")
    return " ".join(out)


def snapshot_indexes(cluster: LocalCluster) -> dict[str, tuple[float, float]]:
    """Per node: (snapshot index, snapshots installed so far)."""
    out = {}
    for n in cluster.ids:
        m = cluster.metrics(n)
        out[n] = (m.get("raftkv_snapshot_index", 0), m.get("raftkv_snapshots_installed", 0))
    return out


def leader_of(cluster: LocalCluster) -> tuple[str, int]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        probes = cluster.probe_all()
        leaders = [(n, p["term"]) for n, p in probes.items() if p and p.get("role") == "leader"]
        if len(leaders) == 1:
            return leaders[0]
        time.sleep(0.1)
    raise SystemExit("no leader")


class Writer:
    """PUTs to the leader, one at a time, recording each latency (ms) while running."""

    def __init__(self, port: int):
        self.client = NodeClient(port, timeout=5)
        self.lat: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._n = 0

    def run_for(self, seconds: float) -> list[float]:
        self.lat = []
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self._stop.is_set():
            self._n += 1
            t = time.perf_counter()
            try:
                status, _ = self.client.put(f"w{self._n % 10}", self._n)
                if status != 200:
                    self.errors += 1
            except OSError:
                self.errors += 1
            self.lat.append((time.perf_counter() - t) * 1000)
            time.sleep(0.01)
        return self.lat

    def stop(self) -> None:
        self._stop.set()


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s)) - 1))] if s else float("nan")


def send_raw(port: int, data: bytes, read: bool = True, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if not read:
            return b""
        try:
            return s.recv(200)
        except OSError:
            return b""


def put_raw(value_json: bytes) -> bytes:
    body = b'{"value": ' + value_json + b"}"
    return (b"PUT /kv/attack HTTP/1.1\r\nHost: x\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\n\r\n" + body)


def status_line(answer: bytes) -> str:
    return answer.split(b"\r\n", 1)[0].decode("latin-1") or "(closed)"


def attack_deep_json(port: int, args) -> str:
    got = [status_line(send_raw(port, put_raw(b"[" * d + b"]" * d))) for d in (975, 100_000)]
    return "; ".join(got)


def attack_big_bodies(port: int, args) -> str:
    results: list[str] = []

    def big(size: int) -> None:
        try:
            results.append(status_line(send_raw(port, put_raw(b'"' + b"x" * size + b'"'), timeout=30)))
        except OSError as e:
            results.append(type(e).__name__)

    threads = [threading.Thread(target=big, args=(16 * 1024 * 1024,)) for _ in range(20)]
    threads += [threading.Thread(target=big, args=(MAX_BODY_BYTES - 64,)) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts: dict[str, int] = {}
    for r in results:
        counts[r] = counts.get(r, 0) + 1
    return ", ".join(f"{n}x {r}" for r, n in sorted(counts.items()))


def attack_slowloris(port: int, args) -> str:
    conns = []
    for _ in range(200):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /kv/k HTTP/1.1\r\n")
        conns.append(s)
    end = time.monotonic() + args.slowloris_s
    i = 0
    while time.monotonic() < end:
        time.sleep(1)
        for s in conns:
            try:
                s.sendall(f"X-{i}: a\r\n".encode())
            except OSError:
                pass
        i += 1
    open_ = 0
    for s in conns:
        s.setblocking(False)
        try:
            open_ += s.recv(1) != b""  # data would be odd; b"" is closed
        except BlockingIOError:
            open_ += 1  # nothing to read and not closed: still open
        except OSError:
            pass
        s.close()
    return f"{open_} of 200 still open after {args.slowloris_s:g} s"


def attack_pipelined_hangup(port: int, args) -> str:
    send_raw(port, b"GET /kv/k HTTP/1.1\r\nHost: x\r\n\r\n" * 1000, read=False)
    return "sent 1000 GETs, hung up"


def attack_bad_lengths(port: int, args) -> str:
    heads = [b"PUT /kv/k HTTP/1.1\r\nContent-Length: +1_2\r\n\r\n{}",
             b"PUT /kv/k HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 20\r\n\r\n{}",
             b"GET /kv/k HTTP/1.1\r\nX-Pad: " + b"a" * 70_000 + b"\r\n\r\n"]
    return "; ".join(status_line(send_raw(port, h)) for h in heads)


def attack_peer_huge_lengths(port: int, args) -> str:
    hung_up: list[bool] = []
    prefixes = [b"\xff\xff", (64 * 1024 * 1024).to_bytes(4, "big")] * 10

    def stranger(prefix: bytes) -> None:
        try:
            hung_up.append(speak_to_peer_port(port, b"", "n2", args.leader, [], raw=prefix + b"x" * (16 << 20),
                                              timeout=10))
        except OSError as e:
            hung_up.append(type(e).__name__)

    threads = [threading.Thread(target=stranger, args=(p,)) for p in prefixes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return f"{sum(h is True for h in hung_up)} of 20 hung up on"


def attack_peer_replay(port: int, args) -> str:
    other = next(i for i in args.ids if i != args.leader)
    stale = json.dumps({"type": "append_resp", "src": other, "dst": args.leader, "term": 0, "success": False,
                        "reject_index": -1, "conflict_index": None, "conflict_term": None, "seq": 0}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        greeting = b""
        while len(greeting) < len(MAGIC) + CHALLENGE_BYTES:
            greeting += s.recv(64)
        ch = greeting[len(MAGIC):]
        hello = encode_hello(args.key, ch, other, args.leader)
        frame = FrameWriter(link_key(args.key, ch, hello_payload(other, args.leader))).frame(stale)
        s.sendall(hello + frame)
        s.sendall(frame * 200)
        time.sleep(1)
    refused = speak_to_peer_port(port, b"", other, args.leader, [], raw=hello + frame)
    return f"200 replays sent on the link; the captured exchange on a new connection: {'refused' if refused else 'kept'}"


def attack_big_state(port: int, args) -> str:
    """130 values just under the body limit, to distinct keys: a 31 MB state, then long enough for the
    writer's own entries to cross the next snapshot (every 1000 entries by default) while it is that big."""
    value = b'"' + b"s" * (MAX_BODY_BYTES - 1024) + b'"'
    codes: dict[str, int] = {}
    for i in range(130):
        body = b'{"value": ' + value + b"}"
        head = (f"PUT /kv/big-{i} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        line = status_line(send_raw(port, head + body, timeout=30))
        codes[line] = codes.get(line, 0) + 1
    time.sleep(args.big_state_hold_s)
    return ", ".join(f"{n}x {c}" for c, n in sorted(codes.items())) + f"; state about {130 * len(value) / 1e6:.0f} MB"


def attack_control(port: int, args) -> str:
    """No attack: the writer alone for as long as big-state takes (its PUTs plus its hold), so a leader
    change or a latency ratio seen here is the machine's load, not an attack's doing."""
    time.sleep(args.control_s)
    return f"nothing sent for {args.control_s:g} s"


ATTACKS = [("control", attack_control), ("deep-json", attack_deep_json), ("big-bodies", attack_big_bodies), ("slowloris", attack_slowloris),
           ("pipelined-hangup", attack_pipelined_hangup), ("bad-lengths", attack_bad_lengths),
           ("peer-huge-lengths", attack_peer_huge_lengths), ("peer-replay", attack_peer_replay),
           ("big-state", attack_big_state)]  # last: the other attacks' baselines stay on a small state
PEER_ATTACKS = {"peer-huge-lengths", "peer-replay"}  # sent to the leader's peer port


def alive_all(cluster: LocalCluster) -> bool:
    return all(cluster.procs[n].poll() is None for n in cluster.ids)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--slowloris-s", type=float, default=15.0, help="how long the slowloris connections dribble")
    p.add_argument("--baseline-s", type=float, default=3.0, help="write-latency sample before each attack")
    p.add_argument("--big-state-hold-s", type=float, default=10.0,
                   help="how long big-state keeps writing on its 31 MB state (snapshots come every 1000 entries)")
    p.add_argument("--control-s", type=float, default=20.0,
                   help="how long the control (no attack: the writer alone) runs; make it as long as the attack "
                        "it is a control for")
    p.add_argument("--attacks", default=",".join(name for name, _ in ATTACKS),
                   help="comma-separated attacks to run, in the bench's order")
    args = p.parse_args()
    wanted = args.attacks.split(",")
    unknown = sorted(set(wanted) - {name for name, _ in ATTACKS})
    if unknown:
        print(f"unknown attack(s) {', '.join(unknown)}; known: {', '.join(n for n, _ in ATTACKS)}", file=sys.stderr)
        return 2
    rows = []
    with LocalCluster(3) as cluster:
        cluster.start_all()
        leader, term = leader_of(cluster)
        port = cluster.client_ports[leader]
        writer = Writer(port)
        args.key, args.ids = cluster.key_file.read_bytes().strip(), cluster.ids
        for name, attack in ATTACKS:
            if name not in wanted:
                continue
            args.leader = leader
            rejected0 = cluster.metrics(leader)
            before = writer.run_for(args.baseline_s)
            rss0 = rss_mb(cluster.procs[leader].pid)
            late0, snaps0 = tick_lateness(cluster), snapshot_indexes(cluster)
            during: list[float] = []
            t = threading.Thread(target=lambda w=writer, d=during: d.extend(w.run_for(3600)))
            t.start()
            try:
                what = attack(cluster.peer_ports[leader] if name in PEER_ATTACKS else port, args)
                time.sleep(1)
            finally:
                writer.stop()
                t.join()
                writer._stop.clear()
            rss1 = rss_mb(cluster.procs[leader].pid)
            late = worst_lateness_ms(late0, tick_lateness(cluster)) if alive_all(cluster) else "?"
            snaps = snapshot_indexes(cluster) if alive_all(cluster) else {}
            took = sum(1 for n in snaps if snaps[n][0] != snaps0[n][0])
            installed = sum(int(snaps[n][1] - snaps0[n][1]) for n in snaps)
            if name in PEER_ATTACKS:
                rejected1 = cluster.metrics(leader)
                grew = {k.split('"')[1]: int(v - rejected0.get(k, 0)) for k, v in rejected1.items()
                        if k.startswith("raftkv_frames_rejected_total") and v > rejected0.get(k, 0)}
                what += f"; rejected: {grew}"
            alive = sum(1 for n in cluster.ids if cluster.procs[n].poll() is None)
            now_leader, now_term = leader_of(cluster)
            rows.append({
                "attack": name, "alive": f"{alive}/3", "leader": f"{leader}@{term} -> {now_leader}@{now_term}",
                "rss_mb": f"{rss0:.0f} -> {rss1:.0f}",
                "p50_ms": f"{pct(before, 50):.1f} -> {pct(during, 50):.1f}",
                "p99_ms": f"{pct(before, 99):.1f} -> {pct(during, 99):.1f}",
                "p50_ratio": round(pct(during, 50) / pct(before, 50), 2) if before and during else None,
                "p99_ratio": round(pct(during, 99) / pct(before, 99), 2) if before and during else None,
                "tick_late_ms": late, "snapshots": f"{took} ({installed} installed)", "writes_during": len(during),
                "load": f"{os.getloadavg()[0]:.1f}",
                "answers": what,
            })
            leader, term = now_leader, now_term
            port = cluster.client_ports[leader]
            writer = Writer(port)
        errors = writer.errors
    cols = ["attack", "alive", "leader", "rss_mb", "p50_ms", "p99_ms", "p50_ratio", "p99_ratio", "tick_late_ms",
            "snapshots", "writes_during", "load"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in cols))
    for r in rows:
        print(f"{r['attack']}: {r['answers']}")
    print(f"write errors during the last phase: {errors}; load average {os.getloadavg()[0]:.1f}; "
          f"median of p50 ratios {statistics.median(r['p50_ratio'] for r in rows if r['p50_ratio']):.2f}")
    print(json.dumps(rows), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
