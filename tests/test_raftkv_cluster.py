"""A real 3-process raftkv cluster on loopback: it elects, serves, survives a leader SIGKILL, and ignores forged frames."""

import asyncio
import json
import secrets
import socket
import threading
import time

import pytest

from targets.raftkv.loopback import LocalCluster, speak_to_peer_port
from targets.raftkv.plugin import RaftKVClient
from targets.raftkv.transport import (
    CHALLENGE_BYTES,
    CHUNK_BYTES,
    MAGIC,
    FrameWriter,
    encode_hello,
    hello_payload,
    link_key,
)

pytestmark = pytest.mark.cluster


@pytest.fixture
def cluster(tmp_path):
    c = LocalCluster(3, base_dir=str(tmp_path))
    try:
        c.start_all()
        yield c
    finally:
        c.stop_all()
        for node_id in c.ids:  # shown by pytest only when the test fails
            print(f"--- {node_id} log ---\n{c.log_tail(node_id, 40)}")


def read_via(cluster, node_id, key):
    """Read through the leader; node_id is where we expect it (leadership may move under load)."""
    code, body = cluster.client(node_id).get(key)
    if code == 200:
        return body["value"]
    return cluster.get_via_leader(key)


def test_elect_write_read_survive_a_leader_kill_and_catch_up(cluster):
    leader = cluster.wait_for_leader(timeout=10)

    acked = {}
    for i in range(30):
        key, value = f"k{i % 10}", i
        cluster.put_via_leader(key, value)
        acked[key] = value
    for key, value in acked.items():
        assert read_via(cluster, leader, key) == value

    # a follower forwards to the leader and answers itself, naming who served
    leader = cluster.wait_for_leader(timeout=10)
    follower = next(i for i in cluster.ids if i != leader)
    code, body = cluster.client(follower).put("k0", "via-follower", "rid-k0")
    if code == 200:
        acked["k0"] = "via-follower"
        # The leader served it (or, if leadership moved meanwhile, the new one); never the follower.
        assert body["served_by"] != follower and body["served_by"] in cluster.ids, body
    else:
        # A loaded machine may have moved leadership under it: a definite refusal or an unknown outcome.
        assert code in (503, 504), body
        cluster.put_via_leader("k0", "via-follower", request_id="rid-k0")  # same id: applied at most once
        acked["k0"] = "via-follower"

    code, body = cluster.cas_via_leader("k1", "not-the-value", 99)
    assert code == 409 and body["error"] == "cas-mismatch" and body["value"] == acked["k1"]
    assert cluster.cas_via_leader("k1", acked["k1"], 100)[0] == 200
    acked["k1"] = 100
    leader = cluster.wait_for_leader(timeout=10)

    cluster.kill(leader)  # SIGKILL: no goodbye, no flush
    survivors = [i for i in cluster.ids if i != leader]
    new_leader = cluster.wait_for_leader(timeout=10, among=survivors, not_this=leader)
    assert new_leader in survivors

    for i in range(30, 40):
        cluster.put_via_leader(f"k{i % 10}", i)
        acked[f"k{i % 10}"] = i
    for key, value in acked.items():
        assert read_via(cluster, cluster.leader(survivors), key) == value, key

    # the killed node comes back from its data directory and catches up
    cluster.start(leader)
    cluster.wait_until_serving(leader)
    target = cluster.status(cluster.leader(survivors))["commit_index"]
    cluster.wait_for_applied(leader, target, timeout=15)

    # and it really holds the data: without the old leader's replacement, the
    # restarted node and the other survivor must still serve every write
    other_leader = cluster.leader(survivors)
    cluster.kill(other_leader)
    pair = [i for i in cluster.ids if i != other_leader]
    cluster.wait_for_leader(timeout=10, among=pair)
    for key, value in acked.items():
        assert read_via(cluster, cluster.wait_for_leader(timeout=10, among=pair), key) == value


def test_an_idle_cluster_reports_one_commit_index_within_a_few_heartbeats(cluster):
    """Status reports only fsynced commit indexes; a follower learns the last commit from heartbeats,
    written without an fsync, so it must fsync that itself or report it behind forever (the election
    bench waits for equal commit indexes before every trial)."""
    cluster.wait_for_leader(timeout=10)
    for i in range(5):
        cluster.put_via_leader(f"idle{i}", i)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        commits = {n: cluster.status(n)["commit_index"] for n in cluster.ids}
        if len(set(commits.values())) == 1:
            break
        time.sleep(0.05)
    assert len(set(commits.values())) == 1, commits


def test_forged_frames_without_the_key_change_no_term_and_no_leader(tmp_path):
    # Long election timeouts: on a loaded CI machine a genuine election must not
    # pass for the effect of a forged frame. A forged vote, append or timeout_now
    # would change a term at once, timeouts or not.
    c = LocalCluster(3, base_dir=str(tmp_path), election_timeout="1500-3000", heartbeat=100)
    try:
        c.start_all()
        check_forged_frames_are_ignored(c)
    finally:
        c.stop_all()
        for node_id in c.ids:
            print(f"--- {node_id} log ---\n{c.log_tail(node_id, 40)}")


def bad_hellos(cluster, node_id) -> float:
    return cluster.metrics(node_id).get('raftkv_frames_rejected_total{reason="bad_hello"}', 0)


def check_forged_frames_are_ignored(cluster):
    leader = cluster.wait_for_leader(timeout=10)
    cluster.put_via_leader("x", 1)
    before = cluster.statuses()
    assert all(s["leader"] == leader for s in before.values())
    rejected_before = {i: bad_hellos(cluster, i) for i in cluster.ids}

    huge = 10**9
    attacker = "n3" if leader != "n3" else "n2"
    wrong_key = secrets.token_bytes(32)
    for victim in cluster.ids:
        if victim == attacker:
            continue
        claim = {"src": attacker, "dst": victim, "term": huge}
        forged = [
            {**claim, "type": "vote", "last_index": huge, "last_term": huge, "force": True},
            {**claim, "type": "prevote", "last_index": huge, "last_term": huge, "force": True},
            {**claim, "type": "append", "prev_index": 0, "prev_term": 0, "entries": [],
             "commit": 0, "seq": 1},
            {**claim, "type": "timeout_now"},
        ]
        port = cluster.peer_ports[victim]
        # One connection per forgery: the node hangs up at the first wrong hello.
        for msg in forged:
            assert speak_to_peer_port(port, wrong_key, attacker, victim, [msg])
        unsigned = json.dumps({"from": attacker, "msg": forged[0]}).encode()
        old_format = len(unsigned).to_bytes(4, "big") + unsigned
        assert speak_to_peer_port(port, wrong_key, attacker, victim, [], raw=old_format)

    time.sleep(1.0)  # several election timeouts: a forged vote would have shown by now
    after = cluster.statuses()
    for node_id, st in after.items():
        assert st["term"] == before[node_id]["term"], (node_id, before[node_id], st)
        assert st["leader"] == leader, (node_id, st)
        assert st["term"] < huge
    for victim in cluster.ids:
        if victim != attacker:
            assert bad_hellos(cluster, victim) >= rejected_before[victim] + 5
    cluster.put_via_leader("x", 2)  # still serving


def test_metrics_clock_skew_and_a_graceful_sigterm(cluster):
    leader = cluster.wait_for_leader(timeout=10)
    cluster.put_via_leader("m", 1)
    m = cluster.metrics(leader)
    for name in ("raftkv_elections_started_total", "raftkv_leader_changes_total", "raftkv_term",
                 'raftkv_role{role="leader"}', "raftkv_commit_index",
                 'raftkv_frames_rejected_total{reason="bad_hello"}', "raftkv_fsync_seconds_count"):
        assert name in m, name
    assert m['raftkv_role{role="leader"}'] == 1 and m["raftkv_fsync_seconds_count"] >= 1

    # a nemesis skews one node's wall clock through its clock file; /status shows it took effect
    follower = next(i for i in cluster.ids if i != leader)
    tmp = cluster.clock_file(follower).with_suffix(".tmp")
    tmp.write_text(json.dumps({"offset_s": 3600.0, "rate": 1.5}))
    tmp.replace(cluster.clock_file(follower))
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        skew = cluster.status(follower)["wall_time"] - time.time()
        if skew > 3500:
            break
        time.sleep(0.05)
    assert 3590 < skew < 3610
    assert cluster.status(follower)["clock_rate"] == 1.5
    assert abs(cluster.status(leader)["wall_time"] - time.time()) < 5

    proc = cluster.procs[follower]
    proc.terminate()
    assert proc.wait(5) == 0
    assert "stopping" in cluster.log_path(follower).read_text()


def start_with_a_follower_down(c: LocalCluster) -> tuple[str, str]:
    """Start every node, then kill one follower; (leader, the follower)."""
    c.start_all()
    leader = c.wait_for_leader(timeout=10)
    lagging = next(i for i in c.ids if i != leader)
    c.kill(lagging)
    return leader, lagging


def test_a_restarted_node_behind_a_compacted_log_catches_up_from_a_snapshot(tmp_path):
    with LocalCluster(3, base_dir=str(tmp_path), extra_args=("--snapshot-every", "20")) as c:
        try:
            leader, lagging = start_with_a_follower_down(c)
            acked = {}
            for i in range(120):  # several snapshots past anything the lagging node has
                c.put_via_leader(f"s{i % 7}", i)
                acked[f"s{i % 7}"] = i
            assert (c.data_dir(leader) / "snapshot").exists()
            c.start(lagging)
            c.wait_until_serving(lagging)
            target = c.status(c.wait_for_leader(timeout=10))["commit_index"]
            c.wait_for_applied(lagging, target, timeout=15)
            assert c.metrics(lagging).get("raftkv_snapshots_installed", 0) >= 1
            # the leader's compacted WAL no longer holds the first entries
            assert (c.data_dir(leader) / "wal").stat().st_size < 120 * 60
            # restart everything from disk (snapshot + compacted WAL) and read back
            c.stop_all()
            for node_id in c.ids:
                c.start(node_id)
            for node_id in c.ids:
                c.wait_until_serving(node_id)
            lead = c.wait_for_leader(timeout=10)
            for key, value in acked.items():
                assert read_via(c, lead, key) == value
        finally:
            c.stop_all()
            for node_id in c.ids:
                print(f"--- {node_id} log ---\n{c.log_tail(node_id, 40)}")


def test_a_node_restarted_with_a_torn_log_tail_truncates_it_and_catches_up(cluster):
    leader = cluster.wait_for_leader(timeout=10)
    for i in range(10):
        cluster.put_via_leader(f"t{i}", i)
    victim = next(i for i in cluster.ids if i != leader)
    cluster.kill(victim)
    with open(cluster.data_dir(victim) / "wal", "ab") as wal:
        wal.write(b"\x00\x00\x01\x00\xde\xad\xbe\xef{\"t\":\"ent\"")  # a record cut off mid-write
    cluster.start(victim)
    cluster.wait_until_serving(victim)
    for i in range(10, 15):
        cluster.put_via_leader(f"t{i}", i)
    target = cluster.status(cluster.wait_for_leader(timeout=10))["commit_index"]
    cluster.wait_for_applied(victim, target, timeout=15)
    assert "torn or corrupt log tail" in cluster.log_path(victim).read_text()


def test_writes_forwarded_while_the_leader_is_killed_are_reported_as_they_happened(cluster):
    """The harness's own client, bound to a follower, writes one key per op while the leader is
    SIGKILLed: every ok is in the store, every fail is not, and an ok names the leader that served it."""
    leader = cluster.wait_for_leader(timeout=10)
    follower = next(i for i in cluster.ids if i != leader)
    addresses = {i: f"127.0.0.1:{p}" for i, p in cluster.client_ports.items()}

    async def writes() -> list[tuple[int, dict]]:
        client = RaftKVClient(addresses, timeout=1.0)
        out = []
        try:
            for i in range(200):
                if i == 60:
                    await asyncio.to_thread(cluster.kill, leader)
                out.append((i, await client.invoke(follower, {"f": "write", "key": f"w{i}", "value": i})))
                await asyncio.sleep(0.01)
            return out
        finally:
            await client.close()

    results = asyncio.run(writes())
    print(results)  # shown when the test fails
    # Served by the node the completion names, else by the follower itself (once it leads).
    served = [r.get("node", follower) if r["type"] == "ok" else None for _, r in results]
    assert leader in served[:60]  # forwarded (a loaded machine may move leadership meanwhile)
    assert any(served[60:])  # and served again after the kill, by the new leader
    for i, r in results:
        value = cluster.get_via_leader(f"w{i}")
        if r["type"] == "ok":
            assert value == i, (i, r)
        elif r["type"] == "fail":
            assert value is None, (i, r)  # a definite failure never took effect


def test_a_node_far_behind_catches_up_from_a_snapshot_of_many_chunks(tmp_path):
    with LocalCluster(3, base_dir=str(tmp_path), extra_args=("--snapshot-every", "20")) as c:
        try:
            leader, lagging = start_with_a_follower_down(c)
            big = "v" * 100_000
            for i in range(60):  # 30 keys of 100 KB: a snapshot of about 12 chunks
                c.put_via_leader(f"b{i % 30}", f"{i}-{big}")
            c.start(lagging)
            c.wait_until_serving(lagging)
            target = c.status(c.wait_for_leader(timeout=10))["commit_index"]
            c.wait_for_applied(lagging, target, timeout=30)
            assert c.metrics(lagging).get("raftkv_snapshots_installed", 0) >= 1
            assert (c.data_dir(leader) / "snapshot").stat().st_size > 10 * CHUNK_BYTES
            # the caught-up node can lead and serve what it got from the snapshot
            c.kill(leader)
            lead = c.wait_for_leader(timeout=10)
            assert read_via(c, lead, "b29") == f"59-{big}"
        finally:
            c.stop_all()
            for node_id in c.ids:
                print(f"--- {node_id} log ---\n{c.log_tail(node_id, 40)}")


def rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_twenty_strangers_sending_huge_length_prefixes_barely_move_the_leaders_memory(cluster):
    leader = cluster.wait_for_leader(timeout=10)
    term = cluster.status(leader)["term"]
    cluster.put_via_leader("before", 1)
    time.sleep(1.0)
    before = rss_kib(cluster.procs[leader].pid)
    port = cluster.peer_ports[leader]
    # Half announce the largest hello there is; half the old wire format's 64 MiB frame. Each then
    # tries to stream 16 MiB; the node hangs up after the length.
    prefixes = [b"\xff\xff", (64 * 1024 * 1024).to_bytes(4, "big")] * 10
    hung_up = []

    def stranger(prefix: bytes) -> None:
        hung_up.append(speak_to_peer_port(port, b"", "n2", leader, [], raw=prefix + b"x" * (16 << 20),
                                          timeout=10))

    threads = [threading.Thread(target=stranger, args=(p,)) for p in prefixes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    after = rss_kib(cluster.procs[leader].pid)
    print(f"leader RSS {before} KiB -> {after} KiB")
    assert hung_up == [True] * 20
    assert after - before < 4 * 1024, f"RSS grew by {after - before} KiB"
    assert bad_hellos(cluster, leader) >= 20
    status = cluster.status(leader)
    assert status["role"] == "leader" and status["term"] == term
    cluster.put_via_leader("after", 2)


def test_a_replayed_frame_is_dropped_and_counted_by_a_running_node(cluster):
    leader = cluster.wait_for_leader(timeout=10)
    other = next(i for i in cluster.ids if i != leader)
    key = cluster.key_file.read_bytes().strip()
    # An authentic but harmless message (a stale term is ignored), sent once and then replayed 200 times
    # on the same connection, as a keyholder on the path could.
    stale = json.dumps({"type": "append_resp", "src": other, "dst": leader, "term": 0, "success": False,
                        "reject_index": -1, "conflict_index": None, "conflict_term": None, "seq": 0}).encode()
    with socket.create_connection(("127.0.0.1", cluster.peer_ports[leader]), timeout=5) as s:
        greeting = b""
        while len(greeting) < len(MAGIC) + CHALLENGE_BYTES:
            greeting += s.recv(64)
        ch = greeting[len(MAGIC):]
        frame = FrameWriter(link_key(key, ch, hello_payload(other, leader))).frame(stale)
        s.sendall(encode_hello(key, ch, other, leader) + frame * 201)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            replays = cluster.metrics(leader).get('raftkv_frames_rejected_total{reason="replay"}', 0)
            if replays >= 200:
                break
            time.sleep(0.1)
    assert replays == 200
    assert cluster.metrics(leader)["raftkv_messages_rejected_stale_term"] >= 1  # the one original arrived


def worst_tick_lateness(c: LocalCluster, node_id: str) -> float:
    """The smallest raftkv_tick_lateness_seconds bound that holds every sample (inf: past the last)."""
    m = c.metrics(node_id)
    total = m["raftkv_tick_lateness_seconds_count"]
    bounds = sorted((float(k.split('"')[1]), v) for k, v in m.items()
                    if k.startswith("raftkv_tick_lateness_seconds_bucket") and "+Inf" not in k)
    return next((b for b, v in bounds if v == total), float("inf"))


def test_a_16_mb_state_is_snapshotted_installed_and_served_after_a_restart_from_it(tmp_path):
    """The node's own snapshots (in the background), one installed on a lagging follower (in pieces), then
    every node restarted from its snapshot file: all serve the same 16 MB back."""
    with LocalCluster(3, base_dir=str(tmp_path), extra_args=("--snapshot-every", "20")) as c:
        try:
            leader, lagging = start_with_a_follower_down(c)
            values = {f"big-{i}": f"{i}-" + "s" * 250_000 for i in range(64)}
            for key, value in values.items():
                c.put_via_leader(key, value, timeout=30)
            c.start(lagging)
            c.wait_until_serving(lagging)
            target = c.status(c.wait_for_leader(timeout=10))["commit_index"]
            c.wait_for_applied(lagging, target, timeout=60)
            assert c.metrics(lagging).get("raftkv_snapshots_installed", 0) >= 1
            # The installing node applies what came after the snapshot while it writes it: wait for the file.
            deadline = time.monotonic() + 30
            while not all((c.data_dir(n) / "snapshot").exists() for n in c.ids) and time.monotonic() < deadline:
                time.sleep(0.1)
            for n in c.ids:
                assert (c.data_dir(n) / "snapshot").stat().st_size > 56 * 250_000, n  # the snapshot at index 60
            # A figure, not asserted: the bucket of each node's latest tick (an election timeout is 0.15-0.3 s).
            print("every tick handled within (s):", {n: worst_tick_lateness(c, n) for n in c.ids})
            c.stop_all()
            c.start_all()
            lead = c.wait_for_leader(timeout=20)
            for n in c.ids:
                c.wait_for_applied(n, target, timeout=30)
            for key in ("big-0", "big-31", "big-63"):
                assert read_via(c, lead, key) == values[key]
            # every node holds all of it: each could serve it as the leader
            assert all(c.status(n)["applied_index"] >= target for n in c.ids)
        finally:
            c.stop_all()
            for node_id in c.ids:
                print(f"--- {node_id} log ---\n{c.log_tail(node_id, 30)}")
