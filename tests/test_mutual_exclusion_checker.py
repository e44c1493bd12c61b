"""The mutual-exclusion checker over hand-written claim sequences: overlap, fencing, skewed clocks, crashes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from checkers.mutual_exclusion import ClockSegments, MutualExclusionChecker, check
from checkers.registry import make_checker
from checkers.verdict import CheckInput
from history.operation import Operation
from nemesis.registry import fault_facts

MS = 1_000_000


class History:
    """Builds the ops the election workload writes: candidate claims (stamped 'at' by the candidate, collected
    later) and the resource's verdict on each unit of work."""

    def __init__(self):
        self.ops: list[Operation] = []
        self.events: list[dict] = []

    def _op(self, process, f, node, call, ret, value, output, status="ok"):
        self.ops.append(Operation(index=len(self.ops) * 2, process=process, f=f, value=value, output=output,
                                  call=call, ret=ret, status=status, key="leadership", node=node))

    def claim(self, node, f, at_ms, token, deadline=None, local=None, why=None, collected_ms=None):
        out = {"token": token, "at": at_ms * MS}
        if deadline is not None:
            out["deadline"], out["local"] = deadline, local if local is not None else at_ms / 1000
        if why:
            out["why"] = why
        got = (collected_ms if collected_ms is not None else at_ms) * MS
        self._op(f"{node}.1", f, node, got, got, {"at": at_ms * MS}, out)

    def work(self, node, t_ms, token, accepted=True, fenced=False):
        self._op("resource", "work", node, t_ms * MS, t_ms * MS,
                 {"candidate": node, "token": token, "fenced": fenced}, None, "ok" if accepted else "fail")

    def nemesis(self, t_ms, f, value, done_ms=None):
        self.events.append({"process": "nemesis", "type": "invoke", "f": f, "value": value, "time": t_ms * MS})
        self.events.append({"process": "nemesis", "type": "info", "f": f, "value": value,
                            "time": (done_ms if done_ms is not None else t_ms) * MS})

    def check(self):
        return check(self.ops, self.events, fault_facts)

    def verdict(self):
        return MutualExclusionChecker().check(CheckInput(self.ops, self.events, fault_facts=fault_facts))


def kinds(result):
    return sorted(a["kind"] for a in result["anomalies"])


def test_one_leader_after_another_is_valid_with_its_statistics():
    h = History()
    h.claim("c1", "acquire", 100, 5)
    h.work("c1", 150, 5)
    h.work("c1", 200, 5)
    h.claim("c1", "release", 300, 5)
    h.claim("c2", "acquire", 400, 6)
    h.work("c2", 450, 6)
    h.claim("c2", "release", 500, 6)
    r = h.check()
    assert r["anomalies"] == [] and r["overlaps"] == []
    assert [(i["node"], i["token"], i["why_end"]) for i in r["intervals"]] == [
        ("c1", 5, "released"), ("c2", 6, "released")]
    assert r["stats"]["leadership_changes"] == 1
    assert r["stats"]["leaderless_s"] == 0.1  # 300..400 ms
    assert r["stats"]["work_per_leader"] == {"c1/5": 2, "c2/6": 1}
    assert h.verdict().valid is True


def test_overlap_without_work_from_both_is_a_fact_not_an_anomaly():
    h = History()
    h.claim("c1", "acquire", 100, 5)
    h.claim("c2", "acquire", 300, 6)
    h.work("c2", 350, 6)
    h.claim("c1", "lost", 400, 5, why="expired")
    r = h.check()
    assert r["anomalies"] == []
    [o] = r["overlaps"]
    assert o["nodes"] == ["c1", "c2"] and o["ms"] == 100.0 and o["accepted"] == [0, 1]


def test_a_paused_holder_writing_after_the_next_acquire_is_two_leaders_acting():
    # c1 is paused at 200 ms during its work; c2 acquires at 2300 ms and writes; c1 thaws, its
    # delayed write is accepted by the unfenced resource, then it notices its lease ran out.
    h = History()
    h.claim("c1", "acquire", 100, 5, deadline=2.1, local=0.1)
    h.work("c1", 150, 5)
    h.nemesis(200, "pause", {"nodes": ["c1"]}, done_ms=250)
    h.claim("c2", "acquire", 2300, 6, deadline=4.3, local=2.3)
    h.work("c2", 2350, 6)
    h.nemesis(5000, "resume", {"nodes": ["c1"]})
    h.work("c1", 5010, 5)
    h.claim("c1", "lost", 5020, 5, why="expired", collected_ms=5100)
    v = h.verdict()
    assert v.valid is False
    [a] = v.anomalies
    assert a.kind == "two-leaders-acting"
    assert a.nodes == ("c1", "c2")
    assert "c1 (token 5) and c2 (token 6)" in a.summary
    assert a.start == 2300 * MS and a.end == 5020 * MS
    claims = {c["node"]: c for c in a.evidence["claims"]}
    assert claims["c1"]["lease_end"] == 2100 * MS  # its own rule said stop at 2.1 s: it did not know
    assert {w["candidate"] for w in a.evidence["work"]} == {"c1", "c2"}
    r = h.check()
    [f] = r["stats"]["failovers"]
    assert f["fault"] == "pause" and f["node"] == "c1" and f["new_leader"] == "c2" and f["failover_s"] == 2.1


def test_fencing_rejects_the_stale_holder_and_counts_it_as_a_save():
    h = History()
    h.claim("c1", "acquire", 100, 5)
    h.work("c1", 150, 5, fenced=True)
    h.claim("c2", "acquire", 2300, 6)
    h.work("c2", 2350, 6, fenced=True)
    h.work("c1", 5010, 5, accepted=False, fenced=True)
    h.claim("c1", "lost", 5020, 5, why="expired")
    r = h.check()
    assert r["anomalies"] == []
    assert r["fencing"]["saved"] == 1 and r["fencing"]["sentence"] == "fencing saved you 1 time"
    assert r["fencing"]["saved_by_candidate"] == {"c1": 1}


def test_a_fenced_resource_accepting_out_of_token_order_is_an_anomaly():
    h = History()
    h.claim("c1", "acquire", 100, 5)
    h.claim("c2", "acquire", 300, 6)
    h.work("c2", 350, 6, fenced=True)
    h.work("c1", 400, 5, fenced=True)  # a broken fence: accepted below the highest token
    r = h.check()
    assert "fencing-out-of-order" in kinds(r)
    a = next(a for a in r["anomalies"] if a["kind"] == "fencing-out-of-order")
    assert "token 5 after it had accepted token 6" in a["summary"]


def test_a_fenced_write_after_the_lease_moved_on_but_before_the_new_holder_wrote_is_stale():
    # The fence only knows a token once its holder writes: c1's late write slips in before c2's first.
    h = History()
    h.claim("c1", "acquire", 100, 5)
    h.work("c1", 150, 5, fenced=True)
    h.claim("c2", "acquire", 2300, 6)
    h.work("c1", 2400, 5, fenced=True)
    h.work("c2", 2500, 6, fenced=True)
    h.claim("c1", "lost", 2600, 5, why="expired")
    r = h.check()
    assert kinds(r) == ["fencing-stale-accepted"]  # at the resource, c1's write came before c2's: not interleaved
    stale = next(a for a in r["anomalies"] if a["kind"] == "fencing-stale-accepted")
    assert "100 ms after c2 had acquired token 6" in stale["summary"]


def test_a_candidate_killed_while_holding_stops_believing_at_the_kill():
    h = History()
    h.claim("c1", "acquire", 100, 5)
    h.work("c1", 150, 5)
    h.nemesis(200, "kill", {"nodes": ["c1"]}, done_ms=260)
    h.claim("c2", "acquire", 2300, 6)
    h.work("c2", 2350, 6)
    # c1's next incarnation campaigns again later; nothing of the first one is left open.
    h.claim("c1", "acquire", 6000, 7)
    r = h.check()
    assert r["anomalies"] == [] and r["overlaps"] == []
    first = r["intervals"][0]
    assert (first["node"], first["why_end"], first["end"]) == ("c1", "killed", 200 * MS)
    [f] = r["stats"]["failovers"]
    assert f["fault"] == "kill" and f["failover_s"] == 2.1
    assert r["stats"]["leaderless_s"] == 2.1


def test_a_holder_whose_clock_was_set_back_believes_past_its_lease_by_the_skew():
    # c1's clock is set 3 s back at 500 ms: its deadline of 2.1 s (its own clock) comes 3 s late.
    h = History()
    h.claim("c1", "acquire", 100, 5, deadline=2.1, local=0.1)
    h.nemesis(500, "bump-clock", {"c1": {"offset_s": -3.0, "rate": 1.0}})
    h.claim("c1", "renew", 600, 5, deadline=2.1, local=-2.4)
    h.claim("c2", "acquire", 2300, 6)
    h.work("c2", 2350, 6)
    h.work("c1", 4000, 5)
    h.claim("c1", "lost", 5200, 5, why="expired")
    r = h.check()
    [a] = r["anomalies"]
    assert a["kind"] == "two-leaders-acting"
    assert a["evidence"]["clock_offsets_s"] == {"c1": -3.0}
    assert "c1 -3s" in a["summary"]
    c1 = r["intervals"][0]
    assert c1["lease_end"] == 5100 * MS  # 2.1 s on a clock 3 s behind
    assert r["clock_skewed"] == ["c1"]


def test_clock_segments_follow_bumps_and_resets():
    segs = ClockSegments()
    segs.set("c1", 1000 * MS, 2.0)
    segs.set("c1", 3000 * MS, 0.0)
    # At 0 s the clock read 0 (no skew yet). It reads 2.5 at 0.5 s after the +2 s jump at 1 s... no:
    # at 1 s it jumps from 1.0 to 3.0, so 2.5 was passed at the jump.
    assert segs.when_local_reaches("c1", 2.5, 0, 0.0) == 1000 * MS
    # 4.0 on its clock: 2 s ahead until 3 s (reads 5.0 then jumps back to 3.0), so first reached at 2 s.
    assert segs.when_local_reaches("c1", 4.0, 0, 0.0) == 2000 * MS
    assert segs.offset("c1", 3500 * MS) == 0.0


def test_no_claims_is_unknown_and_the_registry_knows_the_checker():
    v = make_checker("mutual-exclusion").check(CheckInput([], []))
    assert v.valid == "unknown" and "no candidate ever acquired" in v.reason


@st.composite
def serial_leaderships(draw):
    """Leaders one after another, each releasing before the next acquires, with work inside its own term."""
    h, t, token = History(), 0, 0
    for _ in range(draw(st.integers(1, 6))):
        node = draw(st.sampled_from(["c1", "c2", "c3"]))
        token += draw(st.integers(1, 3))
        t += draw(st.integers(1, 50))
        h.claim(node, "acquire", t, token)
        for _ in range(draw(st.integers(0, 3))):
            t += draw(st.integers(1, 20))
            h.work(node, t, token, fenced=True)
        t += draw(st.integers(1, 20))
        h.claim(node, draw(st.sampled_from(["release", "lost"])), t, token, why="expired")
    return h


@given(serial_leaderships())
def test_property_serial_leaders_are_never_anomalous(h):
    r = h.check()
    assert r["anomalies"] == [] and r["overlaps"] == []
    assert r["stats"]["acquisitions"] == len([o for o in h.ops if o.f == "acquire"])


@given(serial_leaderships(), st.booleans(), st.integers(1, 30))
def test_property_a_late_writer_is_two_leaders_acting_unless_fenced(h, fenced, delay):
    """After any serial history, a holder whose write arrives while a newer holder leads (the paused one):
    unfenced, two leaders acting; fenced, the late write is rejected and counted, with no anomaly."""
    end = max(o.output["at"] for o in h.ops if o.f in ("acquire", "release", "lost")) // MS
    top = max(o.output["token"] for o in h.ops if o.f == "acquire")
    h.claim("c8", "acquire", end + 1, top + 1)
    h.work("c8", end + 2, top + 1, fenced=fenced)
    h.claim("c9", "acquire", end + 2 + delay, top + 2)
    h.work("c9", end + 3 + delay, top + 2, fenced=fenced)
    h.work("c8", end + 4 + delay, top + 1, accepted=not fenced, fenced=fenced)
    h.claim("c8", "lost", end + 5 + delay, top + 1, why="expired")
    r = h.check()
    if fenced:
        assert r["anomalies"] == [] and r["fencing"]["saved"] == 1
    else:
        assert kinds(r) == ["two-leaders-acting"]


def test_an_old_holder_acting_only_before_the_new_one_is_not_two_leaders_acting_unfenced_either():
    h = History()
    h.claim("c1", "acquire", 100, 5)
    h.claim("c2", "acquire", 300, 6)
    h.work("c1", 320, 5)  # after c2's grant, before c2's first write: the resource sees a serial handover
    h.claim("c1", "lost", 330, 5, why="expired")
    h.work("c2", 500, 6)
    r = h.check()
    assert r["anomalies"] == [] and r["overlaps"][0]["accepted"] == [1, 0]
    h.work("c1", 310, 5)
    h.work("c2", 315, 6)  # now c1's write at 320 lands after c2's at 315: interleaved
    assert kinds(h.check()) == ["two-leaders-acting"]


def test_a_release_journaled_while_the_kill_was_landing_is_honoured():
    # The nemesis decided at 200 ms and saw the process gone at 300 ms; the release at 250 ms was its own.
    h = History()
    h.claim("c1", "acquire", 100, 5)
    h.nemesis(200, "kill", {"nodes": ["c1"]}, done_ms=300)
    h.claim("c1", "release", 250, 5, collected_ms=2000)
    h.claim("c2", "acquire", 260, 6)
    r = h.check()
    assert [(i["node"], i["why_end"], i["end"]) for i in r["intervals"]] == [
        ("c1", "released", 250 * MS), ("c2", "end-of-history", 2000 * MS)]
    assert r["overlaps"] == []
