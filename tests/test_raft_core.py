"""Unit tests for the raftkv Raft core, driven by hand: no sockets, no clocks.

A tiny in-test cluster delivers every message within the tick that produced it,
so each test controls exactly who can hear whom and who is up.
"""

from __future__ import annotations

import random

import pytest

from targets.raftkv import node as node_module
from targets.raftkv.core import CoreConfig, RaftCore
from targets.raftkv.node import NodeConfig, RaftKVNode, Restored
from targets.raftkv.sim import Disk


class Cluster:
    """Nodes n1..nN, instant delivery, cuttable links, crash and restart from disk."""

    def __init__(self, n: int = 3, restored: dict[str, Restored] | None = None, down=(), **config):
        self.ids = tuple(f"n{i + 1}" for i in range(n))
        self.config = config
        self.disks = {i: Disk() for i in self.ids}
        self.nodes: dict[str, RaftKVNode | None] = {}
        self.cut: set[tuple[str, str]] = set()
        self.lost_types: set[str] = set()  # message types the network loses
        self.inflight: list[dict] = []
        self.replies: dict[int, tuple[int, dict]] = {}
        self.sent: list[dict] = []  # every message ever sent, for tests that count them
        self.handles = 0
        self.lives = 0
        for node_id in self.ids:
            if restored and node_id in restored:
                self._persist_restored(node_id, restored[node_id])
            if node_id not in down:
                self.start(node_id)

    def _persist_restored(self, node_id: str, r: Restored) -> None:
        disk = self.disks[node_id]
        disk.hard_state, disk.snapshot = r.hard_state, r.snapshot
        disk.entries = {e["index"]: e for e in r.entries}

    def start(self, node_id: str) -> None:
        self.lives += 1
        cfg = NodeConfig(id=node_id, peers=self.ids, **self.config)
        self.nodes[node_id] = RaftKVNode(cfg, self.disks[node_id].restored(), random.Random(self.lives))
        self.pump(node_id)

    def crash(self, node_id: str) -> None:
        self.nodes[node_id] = None

    def pump(self, node_id: str) -> None:
        node = self.nodes[node_id]
        rd = node.ready()
        self.disks[node_id].persist(rd)
        self.inflight.extend(rd.messages)
        self.sent.extend(rd.messages)
        for handle, status, body in rd.replies:
            self.replies[handle] = (status, body)
        node.advance(rd)

    def deliver_all(self, limit: int = 100_000) -> None:
        for _ in range(limit):
            if not self.inflight:
                return
            msg = self.inflight.pop(0)
            node = self.nodes.get(msg["dst"])
            if node is None or (msg["src"], msg["dst"]) in self.cut or msg["type"] in self.lost_types:
                continue
            node.receive(msg)
            self.pump(msg["dst"])
        raise AssertionError(f"messages still flowing after {limit} deliveries: a livelock")

    def tick(self, times: int = 1) -> None:
        for _ in range(times):
            for node_id, node in self.nodes.items():
                if node is not None:
                    node.tick()
                    self.pump(node_id)
            self.deliver_all()

    def isolate(self, *group: str) -> None:
        """Nobody in `group` can talk to anybody outside it."""
        self.cut = {(a, b) for a in self.ids for b in self.ids if (a in group) != (b in group)}

    def heal(self) -> None:
        self.cut = set()

    def leaders(self) -> list[str]:
        return [i for i, n in self.nodes.items() if n is not None and n.core.role == "leader"]

    def leader(self) -> str:
        leaders = self.leaders()
        assert len(leaders) == 1, f"expected one leader, found {leaders}"
        return leaders[0]

    def elect(self, within: int = 200) -> str:
        for _ in range(within):
            self.tick()
            if len(self.leaders()) == 1:
                return self.leader()
        raise AssertionError(f"no leader within {within} ticks: {self.status()}")

    def status(self) -> list[dict]:
        return [n.status() for n in self.nodes.values() if n is not None]

    def request(self, node_id: str, op: dict, ticks: int = 50) -> tuple[int, dict]:
        """Send op to node_id and tick until it answers."""
        self.handles += 1
        handle = self.handles
        self.nodes[node_id].client_request(handle, op)
        self.pump(node_id)
        self.deliver_all()
        for _ in range(ticks):
            if handle in self.replies:
                break
            self.tick()
        return self.replies.pop(handle, (None, {}))


def put(key, value, request_id=None):
    return {"f": "put", "key": key, "value": value, "request_id": request_id}


def get(key):
    return {"f": "get", "key": key}


def entries(*terms: int) -> list[dict]:
    """A log whose i-th entry (from index 1) has the given term; puts x = index."""
    return [
        {"index": i, "term": t, "kind": "op", "data": {"op": put("x", i)}}
        for i, t in enumerate(terms, start=1)
    ]


# ---- configuration ----------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        dict(bugs=frozenset({"no-such-bug"})),
        dict(election_timeout=(300, 150)),
        dict(heartbeat=200),
        dict(tick_ms=0),
        dict(snapshot_every=0),
    ],
)
def test_a_node_config_that_cannot_work_is_refused(bad):
    with pytest.raises(ValueError):
        NodeConfig(id="n1", peers=("n1", "n2", "n3"), **bad)


def test_a_node_must_be_one_of_its_peers():
    with pytest.raises(ValueError):
        NodeConfig(id="n9", peers=("n1", "n2", "n3"))


# ---- elections ------------------------------------------------------------


def test_a_leader_is_elected_and_a_write_commits_on_every_node():
    c = Cluster()
    leader = c.elect()
    assert c.request(leader, put("k", 1)) == (200, {})
    c.tick(10)
    assert all(n.kv.read("k").body == {"value": 1} for n in c.nodes.values())
    assert {s["commit_index"] for s in c.status()} == {2}  # the no-op, then the put


def test_prevote_stops_an_isolated_node_from_raising_its_term_and_disrupting_the_leader():
    c = Cluster()
    leader = c.elect()
    term = c.nodes[leader].core.term
    loner = next(i for i in c.ids if i != leader)
    c.isolate(loner)
    c.tick(300)  # ten election timeouts
    assert c.nodes[loner].core.term == term  # its prevotes were never granted
    c.heal()
    c.tick(30)
    assert c.leader() == leader and c.nodes[leader].core.term == term


def test_check_quorum_makes_an_isolated_leader_step_down_within_two_election_timeouts():
    c = Cluster()
    leader = c.elect()
    c.isolate(leader)
    c.tick(2 * 15 + 1)
    assert c.nodes[leader].core.role == "follower"
    assert c.nodes[leader].metrics()["check_quorum_stepdowns"] == 1


def test_without_check_quorum_an_isolated_leader_stays_leader():
    c = Cluster(bugs=frozenset({"lease-no-checkquorum"}))
    leader = c.elect()
    c.isolate(leader)
    c.tick(100)
    assert c.nodes[leader].core.role == "leader"


def test_a_follower_that_heard_the_leader_recently_ignores_a_vote_request():
    c = Cluster()
    leader = c.elect()
    follower = next(i for i in c.ids if i != leader)
    term = c.nodes[follower].core.term
    c.nodes[follower].receive({"type": "vote", "src": next(i for i in c.ids if i not in (leader, follower)),
                               "dst": follower, "term": term + 5, "last_index": 99, "last_term": 99,
                               "force": False})
    assert c.nodes[follower].core.term == term


def test_no_persist_vote_leaves_voted_for_out_of_the_hard_state():
    correct, buggy = Cluster(), Cluster(bugs=frozenset({"no-persist-vote"}))
    for c in (correct, buggy):
        c.elect()
    assert all(d.hard_state["voted_for"] is not None for d in correct.disks.values())
    assert all(d.hard_state["voted_for"] is None for d in buggy.disks.values())


# ---- replication ------------------------------------------------------------


def test_fast_backoff_skips_a_whole_conflicting_term_per_round_trip():
    # n1 and n2 hold 50 entries of term 3; n3 holds 50 divergent entries of term 2.
    good = Restored({"term": 3, "voted_for": None, "commit": 10}, None, entries(*[1] * 10, *[3] * 50))
    stale = Restored({"term": 3, "voted_for": None, "commit": 10}, None, entries(*[1] * 10, *[2] * 50))
    c = Cluster(restored={"n1": good, "n2": good, "n3": stale}, down=("n3",))
    leader = c.elect()
    c.start("n3")
    c.tick(10)
    rejections = [m for m in c.sent if m["type"] == "append_resp" and m["src"] == "n3" and not m["success"]]
    assert 1 <= len(rejections) <= 2  # not one per divergent entry
    assert c.nodes["n3"].core.log.term_at(60) == 3
    assert c.nodes["n3"].status()["commit_index"] == c.nodes[leader].status()["commit_index"]


def test_a_restarted_follower_catches_up_from_its_disk_and_the_leader():
    c = Cluster()
    leader = c.elect()
    follower = next(i for i in c.ids if i != leader)
    c.request(leader, put("a", 1))
    c.crash(follower)
    for i in range(5):
        assert c.request(leader, put("b", i))[0] == 200
    c.start(follower)
    c.tick(10)
    assert c.nodes[follower].kv.read("b").body == {"value": 4}
    assert c.nodes[follower].status()["applied_index"] == c.nodes[leader].status()["applied_index"]


# ---- the Figure 8 rule ------------------------------------------------------


def figure8_cluster(bugs=frozenset()) -> Cluster:
    """Figure 8 (c) of the Raft paper: S1 and S2 hold index 2 from term 2; S5 holds
    a different index 2 from term 3 (which S3 and S4 elected it in) and is down."""
    hs = {"term": 3, "voted_for": None, "commit": 1}
    return Cluster(
        5,
        restored={
            "n1": Restored(hs, None, entries(1, 2)),
            "n2": Restored(hs, None, entries(1, 2)),
            "n3": Restored(hs, None, entries(1)),
            "n4": Restored(hs, None, entries(1)),
            "n5": Restored(hs, None, entries(1, 3)),
        },
        down=("n5",),
        bugs=bugs,
    )


def figure8_play(c: Cluster) -> dict | None:
    """A term-4 leader (S1 or S2, with S3's vote) reaches S3, then S1 and S2 die and S5 returns.

    Returns the entry at index 2 as the term-4 leader applied it (None if it did not)."""
    c.isolate("n1", "n2", "n3")
    leader = c.elect()
    c.tick(10)
    node = c.nodes[leader]
    applied = node.core.log.entry(2) if node.applied >= 2 else None
    for dead in ("n1", "n2"):
        c.crash(dead)
    c.heal()
    c.start("n5")
    c.tick(100)
    return applied


def won_election(core) -> None:
    """Walk a core through PreVote and a vote with every peer granting."""
    while core.role != "precandidate":
        core.tick()
    for peer in core.others:
        core.step({"type": "prevote_resp", "src": peer, "dst": core.cfg.id, "term": core.term + 1,
                   "granted": True})
    for peer in core.others:
        core.step({"type": "vote_resp", "src": peer, "dst": core.cfg.id, "term": core.term,
                   "granted": True})
    assert core.role == "leader"


def figure8_leader(bugs=frozenset()):
    cfg = CoreConfig("n1", ("n1", "n2", "n3", "n4", "n5"), (15, 30), 5, bugs)
    core = RaftCore(cfg, random.Random(1), {"term": 3, "voted_for": None, "commit": 1}, None,
                    entries(1, 2))
    won_election(core)
    return core


def acked(core, peer: str, match: int) -> None:
    core.step({"type": "append_resp", "src": peer, "dst": "n1", "term": core.term,
               "success": True, "match_index": match, "seq": 0})


def test_figure8_a_leader_does_not_commit_an_old_term_entry_by_counting_replicas():
    core = figure8_leader()
    assert core.term == 4 and core.log.term_at(3) == 4  # the no-op of its term
    acked(core, "n2", 2)
    acked(core, "n3", 2)
    assert core.commit == 1  # index 2 is on n1, n2, n3 but is from term 2
    acked(core, "n2", 3)
    acked(core, "n3", 3)
    assert core.commit == 3  # the no-op of term 4 commits, and index 2 with it


def test_commit_old_term_commits_an_old_term_entry_by_counting_replicas():
    core = figure8_leader(frozenset({"commit-old-term"}))
    acked(core, "n2", 2)
    acked(core, "n3", 2)
    assert core.commit == 2


def test_figure8_the_correct_leaders_commit_survives_when_s5_returns():
    c = figure8_cluster()
    committed = figure8_play(c)
    assert committed is not None and committed["term"] == 2
    for node_id in ("n3", "n4", "n5"):
        assert c.nodes[node_id].core.log.term_at(2) == 2  # S5 could not win with its term-3 entry


def test_figure8_commit_old_term_lets_a_later_leader_commit_a_different_entry_at_that_index():
    c = figure8_cluster(bugs=frozenset({"commit-old-term"}))
    committed = figure8_play(c)
    assert committed is not None and committed["term"] == 2  # the bug committed it by counting
    s5 = c.nodes["n5"]
    assert s5.core.role == "leader"
    assert s5.applied >= 2 and s5.core.log.term_at(2) == 3  # ... and S5 applied its own


# ---- reads --------------------------------------------------------------------


def test_a_readindex_read_waits_for_a_heartbeat_round_then_sees_the_latest_write():
    c = Cluster()
    leader = c.elect()
    c.request(leader, put("k", 7))
    before = len(c.sent)
    assert c.request(leader, get("k")) == (200, {"value": 7})
    assert any(m["type"] == "append" for m in c.sent[before:])  # leadership was confirmed
    assert c.request(leader, get("missing")) == (404, {"error": "not-found"})


def test_a_leader_cut_off_from_the_quorum_does_not_answer_a_read():
    c = Cluster(request_timeout=100)
    leader = c.elect()
    c.isolate(leader)
    status, body = c.request(leader, get("k"), ticks=20)
    assert status in (503, 504, None)


def test_a_write_that_cannot_reach_a_quorum_times_out_with_504():
    c = Cluster(request_timeout=100)
    leader = c.elect()
    c.isolate(leader)
    assert c.request(leader, put("k", 1), ticks=20) == (504, {"error": "timeout"})


def test_a_lease_read_is_served_without_any_message():
    c = Cluster(lease_reads=True)
    leader = c.elect()
    c.request(leader, put("k", 1))
    c.tick(5)  # a heartbeat round answered: the lease is fresh
    before = len(c.sent)
    handle = 999
    c.nodes[leader].client_request(handle, get("k"))
    c.pump(leader)
    assert c.replies[handle] == (200, {"value": 1})
    assert len(c.sent) == before


def test_after_a_failed_transfer_the_leader_reads_by_readindex_not_by_lease():
    # The transfer target may still win a forced election that ignores leases.
    c = Cluster(lease_reads=True)
    leader = c.elect()
    c.request(leader, put("k", 1))
    target = next(i for i in c.ids if i != leader)
    c.isolate(target)
    c.nodes[leader].transfer_leadership(target)
    c.tick(20)  # the handover times out
    assert c.leader() == leader
    before = len(c.sent)
    assert c.request(leader, get("k")) == (200, {"value": 1})
    assert len(c.sent) > before


def test_stale_read_lets_a_follower_answer_from_its_own_state():
    c = Cluster(bugs=frozenset({"stale-read"}))
    leader = c.elect()
    follower = next(i for i in c.ids if i != leader)
    c.isolate(follower)
    c.request(leader, put("k", 1))
    assert c.request(follower, get("k")) == (404, {"error": "not-found"})  # stale


# ---- writes ---------------------------------------------------------------------


def test_a_retried_write_with_a_request_id_is_applied_at_most_once():
    c = Cluster()
    leader = c.elect()
    assert c.request(leader, put("k", 1, "req-1"))[0] == 200
    assert c.request(leader, put("k", 2, "req-2"))[0] == 200
    assert c.request(leader, put("k", 1, "req-1"))[0] == 200  # the retry
    assert c.request(leader, get("k")) == (200, {"value": 2})


def test_a_malformed_write_is_refused_with_400_and_never_reaches_the_log():
    c = Cluster()
    leader = c.elect()
    last = c.nodes[leader].status()["last_log_index"]
    assert c.request(leader, {"f": "put", "key": "k"}) == (400, {"error": "bad-request"})
    assert c.request(leader, {"f": "cas", "key": "k", "to": 1}) == (400, {"error": "bad-request"})
    assert c.request(leader, {"f": "delete", "key": "k"}) == (400, {"error": "bad-request"})
    assert c.nodes[leader].status()["last_log_index"] == last


def test_a_write_whose_entry_another_leader_overwrote_fails_definitely_with_503():
    c = Cluster()
    old = c.elect()
    c.isolate(old)
    handle = 77
    c.nodes[old].client_request(handle, put("k", "lost"))
    c.pump(old)
    c.tick(40)  # the others elect a new leader and commit their own entries
    new = next(i for i in c.leaders() if i != old)
    assert c.request(new, put("k", "kept"))[0] == 200
    c.heal()
    c.tick(10)
    assert c.replies[handle] == (503, {"error": "not-leader", "leader": new})
    assert c.nodes[old].kv.read("k").body == {"value": "kept"}


def test_a_lagging_transfer_target_is_caught_up_before_it_is_told_to_campaign():
    c = Cluster()
    leader = c.elect()
    target = next(i for i in c.ids if i != leader)
    c.isolate(target)
    for i in range(5):
        c.request(leader, put("k", i))
    c.heal()
    c.nodes[leader].transfer_leadership(target)
    c.pump(leader)
    c.deliver_all()
    c.tick(3)
    assert c.leader() == target
    assert c.nodes[target].kv.read("k").body == {"value": 4}


def test_cas_answers_409_with_the_current_value():
    c = Cluster()
    leader = c.elect()
    c.request(leader, put("k", 1))
    assert c.request(leader, {"f": "cas", "key": "k", "from": 5, "to": 6, "request_id": None}) == (
        409, {"error": "cas-mismatch", "value": 1})
    assert c.request(leader, {"f": "cas", "key": "k", "from": 1, "to": 6, "request_id": None}) == (200, {})


def test_ack_before_replicate_acknowledges_a_write_no_follower_has():
    c = Cluster(bugs=frozenset({"ack-before-replicate"}))
    leader = c.elect()
    c.isolate(leader)
    assert c.request(leader, put("k", 1), ticks=5) == (200, {})
    assert c.nodes[leader].status()["commit_index"] < c.nodes[leader].status()["last_log_index"]


# ---- transfer and snapshots ---------------------------------------------------


def test_leadership_transfer_hands_over_to_the_chosen_node_at_once():
    c = Cluster()
    leader = c.elect()
    term = c.nodes[leader].core.term
    target = next(i for i in c.ids if i != leader)
    c.request(leader, put("k", 1))
    c.nodes[leader].transfer_leadership(target)
    c.pump(leader)
    c.deliver_all()
    c.tick(2)
    assert c.leader() == target
    assert c.nodes[target].core.term == term + 1


def test_a_follower_far_behind_a_compacted_log_is_sent_a_snapshot():
    c = Cluster(snapshot_every=5)
    leader = c.elect()
    laggard = next(i for i in c.ids if i != leader)
    c.isolate(laggard)
    for i in range(20):
        assert c.request(leader, put(f"k{i % 3}", i, f"r{i}"))[0] == 200
    assert c.nodes[leader].core.log.snap_index > 0
    c.heal()
    c.tick(20)
    node = c.nodes[laggard]
    assert node.metrics()["snapshots_installed"] >= 1
    assert node.kv.to_json() == c.nodes[leader].kv.to_json()  # data and dedupe table
    assert c.disks[laggard].snapshot is not None


def test_a_snapshot_on_its_way_is_not_sent_again_until_an_election_timeout_passes():
    c = Cluster(snapshot_every=5)
    leader = c.elect()
    laggard = next(i for i in c.ids if i != leader)
    c.isolate(laggard)
    for i in range(10):
        c.request(leader, put("k", i))
    c.lost_types = {"snapshot"}  # it never arrives, and the laggard keeps refusing appends
    c.heal()
    before = len(c.sent)
    c.tick(12)
    snapshots = [m for m in c.sent[before:] if m["type"] == "snapshot" and m["dst"] == laggard]
    assert len(snapshots) == 1
    c.tick(10)
    snapshots = [m for m in c.sent[before:] if m["type"] == "snapshot" and m["dst"] == laggard]
    assert len(snapshots) == 2  # presumed lost after an election timeout, so sent again
    assert c.nodes[laggard].core.role == "follower"  # the heartbeats kept it loyal


def test_a_node_restarts_from_its_snapshot_and_log():
    c = Cluster(snapshot_every=5)
    leader = c.elect()
    for i in range(12):
        c.request(leader, put("k", i))
    c.tick(5)
    follower = next(i for i in c.ids if i != leader)
    c.crash(follower)
    c.start(follower)
    assert c.nodes[follower].kv.read("k").body == {"value": 11}


# ---- forwarding -----------------------------------------------------------------


def cas(key, frm, to):
    return {"f": "cas", "key": key, "from": frm, "to": to, "request_id": None}


def ops_in_log(node, key):
    return [e["data"]["op"] for e in node.core.log.entries if e["kind"] == "op" and e["data"]["op"]["key"] == key]


def answer(c, node_id, src, fid, status, body):
    """Deliver to node_id a forward_resp from src, as if src had answered forward fid."""
    c.nodes[node_id].receive({"type": "forward_resp", "src": src, "dst": node_id, "term": 0, "id": fid,
                              "status": status, "body": body})
    c.pump(node_id)


def send_to(c, node_id, handle, op):
    """Hand op to node_id and queue what it sends, delivering nothing."""
    c.nodes[node_id].client_request(handle, op)
    c.pump(node_id)


def forwarded(c, op=None):
    """Elect a leader and have follower a forward op (handle 1); (leader, a, b, the forward), undelivered."""
    leader = c.elect()
    a, b = [i for i in c.ids if i != leader][:2]
    send_to(c, a, 1, op or put("k", 1))
    [fwd] = [m for m in c.inflight if m["type"] == "forward"]
    return leader, a, b, fwd


def test_a_follower_forwards_writes_cas_and_reads_to_the_leader_and_answers_itself():
    c = Cluster()
    leader = c.elect()
    follower = next(i for i in c.ids if i != leader)
    served = {"served_by": leader}
    assert c.request(follower, put("k", 1)) == (200, served)
    assert c.request(follower, cas("k", 5, 6)) == (409, {"error": "cas-mismatch", "value": 1, **served})
    assert c.request(follower, cas("k", 1, 2)) == (200, served)
    assert c.request(follower, get("k")) == (200, {"value": 2, **served})
    assert c.request(follower, get("nope")) == (404, {"error": "not-found", **served})
    # The leader appended the writes; the follower only relayed them.
    assert [op["f"] for op in ops_in_log(c.nodes[leader], "k")] == ["put", "cas", "cas"]
    assert c.nodes[follower].metrics()["forwards_sent"] == 5
    assert c.nodes[leader].metrics()["forwards_served"] == 5
    assert c.nodes[follower].metrics()["forwards_open"] == 0


def test_a_forwarded_read_waits_for_the_leaders_heartbeat_round():
    c = Cluster()
    leader = c.elect()
    follower = next(i for i in c.ids if i != leader)
    c.request(leader, put("k", 7))
    c.lost_types = {"append_resp"}  # the leader cannot confirm it still leads
    send_to(c, follower, 1, get("k"))
    c.deliver_all()
    assert 1 not in c.replies
    c.lost_types = set()
    c.tick(6)  # the next heartbeat round is answered
    assert c.replies[1] == (200, {"value": 7, "served_by": leader})


def test_a_node_that_knows_no_leader_holds_a_request_one_election_timeout_then_answers_503_not_leader():
    c = Cluster()
    c.isolate("n1")  # it never learns who wins
    send_to(c, "n1", 1, put("k", 1))
    send_to(c, "n1", 2, get("k"))
    c.tick(29)
    assert c.replies == {}
    c.tick()  # the election timeout's upper bound: 30 ticks
    assert c.replies == {1: (503, {"error": "not-leader", "leader": None}),
                         2: (503, {"error": "not-leader", "leader": None})}
    assert not [m for m in c.sent if m["type"] == "forward"]


def test_a_request_held_during_an_election_is_served_once_a_leader_is_known():
    c = Cluster()
    send_to(c, "n1", 1, put("k", 1))
    send_to(c, "n2", 2, put("k", 2))
    leader = c.elect()
    c.tick(3)
    answered = {h: c.replies[h] for h in (1, 2)}
    assert all(status == 200 for status, _ in answered.values()), answered
    assert len(ops_in_log(c.nodes[leader], "k")) == 2


def test_a_duplicated_forward_reaches_the_log_once_and_is_answered_once():
    c = Cluster()
    leader, _, _, fwd = forwarded(c, {"f": "put", "key": "k", "value": 1})  # no request id of its own
    assert fwd["op"]["request_id"]  # the forwarder gave it one: the dedupe table covers it too
    c.inflight.append(dict(fwd))
    c.deliver_all()
    c.tick(2)
    assert c.replies[1] == (200, {"served_by": leader})
    assert len(ops_in_log(c.nodes[leader], "k")) == 1


def test_a_node_that_is_not_the_leader_refuses_a_forward_and_never_forwards_it_again():
    c = Cluster()
    leader = c.elect()
    a, b = (i for i in c.ids if i != leader)
    c.nodes[b].receive({"type": "forward", "src": a, "dst": b, "term": 0, "id": "x.1", "op": put("k", 1)})
    rd = c.nodes[b].ready()
    assert [(m["type"], m["dst"], m["status"], m["body"]) for m in rd.messages] == [
        ("forward_resp", a, 503, {"error": "not-leader", "leader": leader})]


def test_a_refusal_naming_another_leader_is_followed_there():
    c = Cluster()
    leader, a, b, fwd = forwarded(c)
    c.inflight.clear()
    # As if the leader had stepped down for b: its refusal names b, which is asked next.
    answer(c, a, leader, fwd["id"], 503, {"error": "not-leader", "leader": b})
    assert [(m["type"], m["dst"], m["id"]) for m in c.inflight] == [("forward", b, fwd["id"])]
    c.deliver_all()  # b is no leader: it refuses, naming the real one, which is asked third
    assert c.replies[1] == (200, {"served_by": leader})
    assert c.nodes[a].metrics()["forwards_sent"] == node_module.FORWARD_ATTEMPTS == 3


def test_an_answer_from_a_node_the_forward_was_not_sent_to_is_ignored():
    c = Cluster()
    leader, a, b, fwd = forwarded(c)
    answer(c, a, b, fwd["id"], 200, {})
    assert 1 not in c.replies
    c.deliver_all()
    assert c.replies[1] == (200, {"served_by": leader})


def test_a_forward_that_could_not_be_sent_at_all_fails_definitely():
    c = Cluster()
    leader, follower, _, fwd = forwarded(c)
    c.inflight.clear()
    c.nodes[follower].forward_unsent(fwd)
    c.pump(follower)
    assert c.replies[1] == (503, {"error": "leader-unreachable", "leader": leader})
    assert c.nodes[follower].metrics()["forwards_open"] == 0


def test_a_forward_lost_on_the_way_is_a_504_after_the_request_timeout():
    c = Cluster(request_timeout=100)
    leader = c.elect()
    follower = next(i for i in c.ids if i != leader)
    c.lost_types = {"forward"}
    assert c.request(follower, put("k", 1), ticks=20) == (504, {"error": "timeout"})
    assert c.nodes[follower].metrics()["forwards_open"] == 0


def test_forwards_in_flight_are_capped_and_past_the_cap_refused_as_busy(monkeypatch):
    monkeypatch.setattr(node_module, "MAX_FORWARDS", 2)
    c = Cluster()
    leader = c.elect()
    follower = next(i for i in c.ids if i != leader)
    for handle in (1, 2, 3):
        send_to(c, follower, handle, put("k", handle))
    assert c.replies == {3: node_module.BUSY}
    c.deliver_all()
    c.tick(2)
    assert c.replies[1][0] == c.replies[2][0] == 200


def applied_ops(node):
    """The client writes a node applied, in order (its log after its snapshot, up to applied)."""
    return [e["data"]["op"] for e in node.core.log.slice(node.core.log.snap_index + 1, node.applied + 1)
            if e["kind"] == "op"]


def test_forwarded_writes_in_flight_when_the_leader_changes_end_as_what_really_happened():
    c = Cluster(5)
    old = c.elect()
    follower = next(i for i in c.ids if i != old)
    handles = (101, 102, 103)
    for handle in handles:
        send_to(c, follower, handle, put("k", f"v{handle}"))
    # The old leader appends them, but is cut off before any follower has them.
    for msg in [m for m in c.inflight if m["type"] == "forward"]:
        c.inflight.remove(msg)
        c.nodes[old].receive(msg)
        c.pump(old)
    c.isolate(old)
    c.deliver_all()
    c.tick(60)  # the others elect a leader; the follower forgets the old one
    new = next(i for i in c.leaders() if i != old)
    # A new request on the same follower goes to the new leader.
    assert c.request(follower, put("k", "kept")) == (200, {"served_by": new})
    c.heal()
    c.tick(10)  # the old leader learns its entries were overwritten, refuses, and is followed to the new one
    applied = [op["value"] for op in applied_ops(c.nodes[new])]
    assert applied.count("kept") == 1
    for handle in handles:
        status, body = c.replies[handle]
        assert status in (200, 503, 504), (status, body)
        if status == 200:  # the new leader took it, after its own write
            assert body == {"served_by": new} and applied.count(f"v{handle}") == 1
        if status == 503:  # certainly never applied
            assert f"v{handle}" not in applied
    assert any(c.replies[h][0] == 200 for h in handles)  # the refusal named the new leader
    c.tick(10)
    final = {n.kv.read("k").body["value"] for n in c.nodes.values()}
    assert final == {applied[-1]}


def test_a_forwarded_read_is_never_stale_after_a_leader_change_unless_the_lease_bug_serves_it():
    # {old leader, follower} | {three others}: the follower's forwards still go to the old leader.
    c = Cluster(5)
    old = c.elect()
    c.request(old, put("k", 1))
    follower = next(i for i in c.ids if i != old)
    c.isolate(old, follower)
    send_to(c, follower, 101, get("k"))
    c.deliver_all()
    c.tick(40)  # its heartbeat rounds reach no quorum, and it steps down, refusing the read
    assert 101 not in c.replies and c.nodes[follower].held  # held again: no leader in sight
    assert c.nodes[follower].metrics()["forwards_sent"] == 1  # and not sent again to the node that refused
    c.tick(40)
    assert c.replies[101] == (503, {"error": "not-leader", "leader": None})

    c = Cluster(5, request_timeout=300, lease_reads=True, bugs=frozenset({"lease-no-checkquorum"}))
    old = c.elect()
    c.request(old, put("k", 1))
    follower = next(i for i in c.ids if i != old)
    c.isolate(old, follower)
    c.tick(40)
    new = next(i for i in c.leaders() if i != old)
    assert c.request(new, put("k", 2))[0] == 200
    assert c.nodes[follower].core.leader == old
    # The deliberate bug is still reachable through a follower: a stale read.
    assert c.request(follower, get("k")) == (200, {"value": 1, "served_by": old})


# ---- appends bounded in bytes (issue 17's big-state attack) ---------------------------------------


def _leader_with(values: list[str], max_append_bytes: int):
    cfg = CoreConfig("n1", ("n1", "n2", "n3"), (15, 30), 5, max_append_bytes=max_append_bytes)
    log = [{"index": i, "term": 1, "kind": "op", "data": {"op": put(f"k{i}", v)}}
           for i, v in enumerate(values, start=1)]
    core = RaftCore(cfg, random.Random(1), {"term": 1, "voted_for": None, "commit": 0}, None, log)
    won_election(core)
    core.take_outbox()
    return core


def test_an_append_carries_entries_up_to_its_byte_budget_and_always_at_least_one():
    big = "v" * 300_000
    core = _leader_with([big] * 10, max_append_bytes=1 << 20)
    core.step({"type": "append_resp", "src": "n2", "dst": "n1", "term": core.term, "success": False,
               "reject_index": 1, "conflict_index": 1, "conflict_term": None, "seq": 0})
    sent = [msg for msg in core.take_outbox() if msg["type"] == "append" and msg["dst"] == "n2"]
    assert sent and all(msg["entries"] for msg in sent)
    assert len(sent[0]["entries"]) == 3  # 3 x 300 KB fit in 1 MiB, a fourth does not
    one = _leader_with(["v" * (2 << 20)] * 3, max_append_bytes=1 << 20)
    one.step({"type": "append_resp", "src": "n2", "dst": "n1", "term": one.term, "success": False,
              "reject_index": 1, "conflict_index": 1, "conflict_term": None, "seq": 0})
    sent = [msg for msg in one.take_outbox() if msg["type"] == "append" and msg["dst"] == "n2"]
    assert len(sent[0]["entries"]) == 1  # an entry over the budget still goes, alone


def test_the_size_estimate_is_cheap_for_huge_and_deep_values_and_stops_at_its_cap():
    import json

    from targets.raftkv.core import approx_size

    assert 100 <= approx_size("x" * 100, 10_000) <= 110
    assert approx_size(["y" * 10_000_000], 1 << 20) >= 10_000_000  # a string counts by its length
    wide = {f"k{i}": i for i in range(1_000_000)}
    assert approx_size(wide, 1000) >= 4_000_000  # counted from its size, not key by key
    deep: object = 0
    for _ in range(100_000):
        deep = [deep]
    assert 1000 < approx_size(deep, 1000) < 2000  # the walk stopped a few levels past the cap
    small = {"a": [1, "bc", None, {"d": True}]}
    assert len(json.dumps(small)) <= approx_size(small, 10_000) <= 2 * len(json.dumps(small))  # an estimate
