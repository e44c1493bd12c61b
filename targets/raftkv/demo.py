"""A local demo of raftkv: 3 real node processes on loopback elect, serve, survive a leader SIGKILL.

It also plays an attacker without the cluster key, whose forged vote request
every node drops.

    python -m targets.raftkv.demo [--keep]

Runs in a temporary directory, prints each step and what it saw, stops every
process it started (also on Ctrl-C or failure), and exits 0 when every
acknowledged write survived, 1 when something went wrong. It works from an
installed splitbrain as from a checkout (targets.raftkv.loopback manages the
processes).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path

from targets.raftkv.loopback import LocalCluster, speak_to_peer_port


class DemoFailed(Exception):
    """Something the demo promised did not happen; the message says what."""


def say(step: str, detail: str = "") -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {step}" + (f": {detail}" if detail else ""), flush=True)


def show_roles(cluster: LocalCluster, nodes: list[str] | None = None) -> None:
    for node_id in nodes or cluster.ids:
        st = cluster.status(node_id)
        if st is None:
            print(f"    {node_id}: down")
        else:
            print(f"    {node_id}: {st['role']:<12} term {st['term']:<3} leader {st['leader']}  "
                  f"commit {st['commit_index']} applied {st['applied_index']}")


def read_all(cluster: LocalCluster, node_id: str, acked: dict[str, int]) -> None:
    client = cluster.client(node_id)
    try:
        for key, value in acked.items():
            code, body = client.get(key)
            if code == 503:  # leadership moved meanwhile (a loaded machine): ask the new leader
                code, body = 200, {"value": cluster.get_via_leader(key)}
            if code != 200 or body.get("value") != value:
                raise DemoFailed(f"{key}: acknowledged {value}, {node_id} answered {code} {body}")
    finally:
        client.close()


def run(cluster: LocalCluster) -> None:
    say("1. starting 3 raftkv nodes on 127.0.0.1", f"data in {cluster.base}")
    cluster.start_all()
    started = time.monotonic()
    leader = cluster.wait_for_leader(timeout=10)
    say("2. leader elected", f"{leader} after {(time.monotonic() - started) * 1000:.0f} ms")
    show_roles(cluster)

    acked: dict[str, int] = {}
    for i in range(20):
        key = f"key-{i % 5}"
        cluster.put_via_leader(key, i)
        acked[key] = i
    say("3. wrote 20 values to 5 keys through the leader", ", ".join(f"{k}={v}" for k, v in acked.items()))
    read_all(cluster, leader, acked)
    say("4. read every key back from the leader", "all match")

    survivors = [i for i in cluster.ids if i != leader]
    killed_at = time.monotonic()
    cluster.kill(leader)
    say("5. SIGKILLed the leader", leader)
    new_leader = cluster.wait_for_leader(timeout=10, among=survivors, not_this=leader)
    say("6. new leader elected", f"{new_leader} after {(time.monotonic() - killed_at) * 1000:.0f} ms")
    show_roles(cluster, survivors)

    for i in range(20, 30):
        key = f"key-{i % 5}"
        cluster.put_via_leader(key, i)
        acked[key] = i
    read_all(cluster, cluster.wait_for_leader(timeout=10, among=survivors), acked)
    say("7. every acknowledged write survived, and 10 more were written with 2 of 3 nodes", "ok")

    cluster.start(leader)
    cluster.wait_until_serving(leader)
    say("8. restarted", f"{leader} from its data directory")
    target = cluster.status(cluster.wait_for_leader(timeout=10, among=survivors))["commit_index"]
    st = cluster.wait_for_applied(leader, target, timeout=15)
    say("9. it caught up", f"{leader} applied index {st['applied_index']} >= leader's commit {target}")
    show_roles(cluster)

    forge_a_vote(cluster)


def forge_a_vote(cluster: LocalCluster) -> None:
    """Play a malicious process without the cluster key: ask every node for its vote in a huge term."""
    before = cluster.statuses()
    huge = 10**9
    wrong_key = secrets.token_bytes(32)
    for victim in cluster.ids:
        claim = "n1" if victim != "n1" else "n2"
        vote = {"type": "vote", "src": claim, "dst": victim, "term": huge, "last_index": huge,
                "last_term": huge, "force": True}
        speak_to_peer_port(cluster.peer_ports[victim], wrong_key, claim, victim, [vote])
    time.sleep(0.5)
    after = cluster.statuses()
    rejected = {i: cluster.metrics(i).get('raftkv_frames_rejected_total{reason="bad_hello"}', 0)
                for i in cluster.ids}
    changed = [i for i in after if after[i]["term"] != before.get(i, {}).get("term")]
    if any(st["term"] >= huge for st in after.values()):
        raise DemoFailed(f"a forged vote request moved a term: {after}")
    say("10. sent every node a forged vote request (term 10^9) without the cluster key",
        "refused at the handshake: bad-hello counters " + ", ".join(f"{i}={int(n)}" for i, n in rejected.items())
        + ("; terms unchanged" if not changed else f"; terms moved by a real election on {changed}"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m targets.raftkv.demo", description=__doc__.splitlines()[0])
    p.add_argument("--keep", metavar="DIR", help="run in DIR and keep data and node logs there")
    args = p.parse_args(argv)
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster(3, base_dir=args.keep)
    try:
        run(cluster)
        say("done", "raftkv elected, served, survived a leader kill, caught up, ignored a forgery")
        return 0
    except (DemoFailed, TimeoutError, RuntimeError, OSError) as e:
        say("FAILED", str(e))
        for node_id in cluster.ids:
            print(f"--- last lines of {node_id}'s log ---\n{cluster.log_tail(node_id)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 1
    finally:
        cluster.close()
        say("stopped every node process")


if __name__ == "__main__":
    sys.exit(main())
