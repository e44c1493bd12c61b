"""The impostor fault against real raftkv processes on loopback: ignored by the correct store, followed by no-peer-auth.

A sampler thread plays the observer (every node's /status every 50 ms, in the
observer's event shape), and the split-brain checker judges what it saw, as
it would judge a Docker run.
"""

from __future__ import annotations

import threading
import time

import pytest

from checkers.election import check
from nemesis.core import Nemesis
from nemesis.impostor import NAME, TERM_LEAD
from targets.raftkv.loopback import LocalCluster
from targets.raftkv.plugin import RaftKV

pytestmark = pytest.mark.cluster


class Recorder:
    """Observer samples and nemesis events, as the run loop writes them."""

    def __init__(self, cluster: LocalCluster):
        self.c = cluster
        self.events: list[dict] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def add(self, **event) -> None:
        with self._lock:
            self.events.append({**event, "time": time.monotonic_ns(), "index": len(self.events)})

    def _sample(self) -> None:
        while not self._stop.is_set():
            for node, status in self.c.probe_all(timeout=0.3).items():
                self.add(process="observer", type="ok" if status else "info", f="status", node=node, value=status)
            time.sleep(0.05)

    def invoke(self, nem: Nemesis, op: dict) -> dict:
        self.add(process="nemesis", type="invoke", f=op["f"], value=op.get("value"))
        done = nem.invoke(op)
        self.add(process="nemesis", **done)
        return done

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


def run_impostor(tmp_path, bugs: tuple[str, ...], claim: str) -> tuple[LocalCluster, dict, dict, list[dict]]:
    extra = tuple(a for b in bugs for a in ("--bug", b))
    c = LocalCluster(3, base_dir=str(tmp_path), extra_args=extra)
    c.start_all()
    leader = c.wait_for_leader(timeout=10)
    c.put_via_leader("k", 1)
    nem = Nemesis(c, RaftKV(), ["impostor"])
    assert nem.problems() == []
    target = {"leader": leader, "follower": next(i for i in c.ids if i != leader)}.get(claim, claim)
    with Recorder(c) as rec:
        time.sleep(0.3)
        started = rec.invoke(nem, {"f": "start-impostor", "value": {"claim": target, "key": "wrong"}})
        time.sleep(2.0)  # 40 of its heartbeat rounds
        stopped = rec.invoke(nem, {"f": "stop-impostor"})
        time.sleep(1.0)
    return c, started, stopped, rec.events


def test_the_correct_store_hangs_up_on_the_impostor_and_nobody_follows_it(tmp_path):
    c, started, stopped, events = run_impostor(tmp_path, (), "follower")
    try:
        value, ev = started["value"], started["evidence"]
        assert ev["verified"] and ev["reached"] == {n: "open" for n in c.ids}
        assert value["member"] and value["term"] >= TERM_LEAD and value["key"] == "wrong"
        assert started["fault"]["impostor"] == {"id": value["claim"], "member": True, "term": value["term"]}
        assert "impostor claiming" in c.rogue_log(NAME) and "links up" in stopped["evidence"]["log_tail"][-1]
        assert stopped["evidence"]["removed"] and c.rogue_state(NAME) == "missing"
        # every member refused its hellos, and no term got anywhere near its own
        refused = {i: c.metrics(i)['raftkv_frames_rejected_total{reason="bad_hello"}'] for i in c.ids
                   if i != value["claim"]}
        assert all(n >= 1 for n in refused.values()), refused
        assert all(s["term"] < value["term"] for s in c.probe_all().values())
        result = check(events, [])
        assert not [a for a in result["anomalies"] if a["type"] == "impostor-followed"], result["anomalies"]
    finally:
        c.close()


def test_no_peer_auth_follows_the_impostor_and_the_checker_says_so(tmp_path):
    c, started, stopped, events = run_impostor(tmp_path, ("no-peer-auth",), "follower")
    try:
        claim, term = started["value"]["claim"], started["value"]["term"]
        result = check(events, [])
        followed = [a for a in result["anomalies"] if a["type"] == "impostor-followed"]
        # The two members it talks to take its term and name it their leader; their answers (sent to
        # the real member whose id it claims) carry the term to that member too.
        assert sorted(a["node"] for a in followed) == c.ids
        for a in followed:
            assert a["observations"][0]["term"] >= term
            assert f"reached term {a['observations'][0]['term']}, the impostor's ({term})" in a["summary"]
        named = [a["node"] for a in followed if f"named {claim} its leader" in a["summary"]]
        assert named and claim not in named
        assert not result["valid"]
        # once it is gone the members elect one of their own, beyond its term, and serve again
        c.put_via_leader("k", 2)
        assert c.status(c.wait_for_leader(timeout=10))["term"] > term
    finally:
        c.close()


def test_an_impostor_with_an_id_no_member_has_is_refused_even_by_no_peer_auth(tmp_path):
    c, started, _, events = run_impostor(tmp_path, ("no-peer-auth",), "new")
    try:
        assert started["value"] == {**started["value"], "claim": "n4", "member": False}
        assert all(c.metrics(i)['raftkv_frames_rejected_total{reason="unknown_peer"}'] >= 1 for i in c.ids)
        assert not [a for a in check(events, [])["anomalies"] if a["type"] == "impostor-followed"]
    finally:
        c.close()


def test_heal_all_and_teardown_remove_a_running_impostor(tmp_path):
    with LocalCluster(3, base_dir=str(tmp_path)) as c:
        c.start_all()
        c.wait_for_leader(timeout=10)
        nem = Nemesis(c, RaftKV(), ["impostor"])
        nem.invoke({"f": "start-impostor", "value": {"claim": "n1"}})
        again = nem.invoke({"f": "start-impostor", "value": {"claim": "n2"}})
        assert again["value"] is None and "already running" in again["evidence"]["note"]
        proc = c.rogues[NAME]
        healed = nem.heal_all()
        assert "stop-impostor" in healed["value"] and healed["evidence"]["stop-impostor"]["removed"]
        assert proc.poll() is not None and nem.current_faults == []
        nem.invoke({"f": "start-impostor", "value": {"claim": "new", "key": "none"}})
        proc = c.rogues[NAME]
    assert proc.poll() is not None  # the cluster's teardown killed it
