"""The pure parts of bench/raftkv_vs_etcd.py and targets/etcd/loopback.py: the one HTTP client both stores
are driven with (etcd answers errors chunked), the failover timelines read from each store's log, etcd's
command line. No processes: the bench itself is run by hand (its figures are not a test)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

from targets.etcd.loopback import LocalEtcd

BENCH = Path(__file__).resolve().parent.parent / "bench" / "raftkv_vs_etcd.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("raftkv_vs_etcd", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_the_client_reads_length_and_chunked_answers_on_one_keep_alive_connection():
    bench = load_bench()
    answers = [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}",
               b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"7\r\n{\"error\r\n6\r\n\":\"no\"\r\n1\r\n}\r\n0\r\nGrpc-Trailer: x\r\n\r\n"]

    async def scenario():
        async def serve(reader, writer):
            for answer in answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                writer.write(answer)
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        client = bench.Http(server.sockets[0].getsockname()[1])
        try:
            first = await client.request("PUT", "/kv/a", b'{"value":1}', timeout=2)
            second = await client.request("POST", "/v3/kv/put", b"{}", timeout=2)
        finally:
            client.close()
            server.close()
        return first, second

    first, second = asyncio.run(scenario())
    assert first == (200, b'{"ok":true}')
    assert second[0] == 503 and json.loads(second[1]) == {"error": "no"}


def test_failover_timelines_are_read_from_each_stores_log(tmp_path):
    bench = load_bench()
    since = datetime(2026, 12, 2, 15, 0, 0).timestamp()
    (tmp_path / "n2.log").write_text(
        "2026-12-02T14:59:59.900 n2 INFO role leader -> follower (term 3)\n"
        "2026-12-02T15:00:00.180 n2 INFO role follower -> precandidate (term 3)\n"
        "2026-12-02T15:00:00.183 n2 INFO role precandidate -> candidate (term 4)\n"
        "2026-12-02T15:00:00.190 n2 INFO role candidate -> leader (term 4)\n")
    raftkv = bench.RaftkvSide.__new__(bench.RaftkvSide)
    raftkv.cluster = SimpleNamespace(log_path=lambda node_id: tmp_path / f"{node_id}.log")
    got = [(round((at - since) * 1000), node, role) for at, node, role in raftkv.timeline(["n2"], since)]
    assert got == [(180, "n2", "precandidate"), (183, "n2", "candidate"), (190, "n2", "leader")]

    utc = datetime(2026, 12, 2, 15, 0, 0).astimezone().utcoffset()
    stamp = (datetime(2026, 12, 2, 15, 0, 0) - utc).strftime("%Y-%m-%dT%H:%M:%S")  # zap writes UTC
    (tmp_path / "n3.log").write_text("\n".join(json.dumps(r) for r in [
        {"level": "info", "ts": stamp + ".150Z", "msg": "4ad3 is starting a new election at term 5"},
        {"level": "info", "ts": stamp + ".151Z", "msg": "4ad3 became candidate at term 6"},
        {"level": "info", "ts": stamp + ".160Z", "msg": "4ad3 became leader at term 6"},
    ]) + "\nnot json\n")
    etcd = bench.EtcdSide.__new__(bench.EtcdSide)
    etcd.cluster = SimpleNamespace(log_path=lambda node_id: tmp_path / f"{node_id}.log")
    got = [(round((at - since) * 1000), node, role) for at, node, role in etcd.timeline(["n3"], since)]
    assert got == [(151, "n3", "candidate"), (160, "n3", "leader")]


def test_etcd_members_get_the_bench_timing_and_a_static_cluster_on_loopback(tmp_path):
    e = LocalEtcd(3, base_dir=str(tmp_path), heartbeat_ms=30, election_ms=150, binary="/usr/bin/etcd")
    cmd = e.command("n2")
    assert cmd[0] == "/usr/bin/etcd" and "--name=n2" in cmd
    assert "--heartbeat-interval=30" in cmd and "--election-timeout=150" in cmd
    cluster = next(a for a in cmd if a.startswith("--initial-cluster="))
    assert cluster.count("=http://127.0.0.1:") == 3
    assert f"--listen-client-urls=http://127.0.0.1:{e.client_ports['n2']}" in cmd
    assert f"--data-dir={tmp_path / 'n2'}" in cmd
