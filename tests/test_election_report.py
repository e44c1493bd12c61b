"""The report's candidate lanes: believed leadership with its token, overlaps and rejected writes marked."""

from __future__ import annotations

from checkers.mutual_exclusion import check
from history.events import Event, History
from reports.data import ROLES, claim_lanes, operations_table, rejected_marks

MS = 1_000_000


def _history():
    """c1 leads (token 5), c2 acquires (6) while c1 still believes; c1's late write is rejected by the fence."""
    ev = []

    def add(t_ms, kind, process, f, node, value):
        ev.append(Event(index=len(ev), type=kind, process=process, f=f, time=t_ms * MS, key="leadership",
                        value=value, node=node))

    add(100, "invoke", "c1.1", "acquire", "c1", {"at": 100 * MS})
    add(101, "ok", "c1.1", "acquire", "c1", {"at": 100 * MS, "token": 5})
    add(150, "invoke", "c3.1", "start", "c3", {"at": 150 * MS})
    add(151, "ok", "c3.1", "start", "c3", {"at": 150 * MS})
    add(300, "invoke", "c2.1", "acquire", "c2", {"at": 300 * MS})
    add(301, "ok", "c2.1", "acquire", "c2", {"at": 300 * MS, "token": 6})
    work = {"candidate": "c2", "token": 6, "fenced": True}
    add(350, "invoke", "resource", "work", "c2", work)
    add(350, "ok", "resource", "work", "c2", work)
    stale = {"candidate": "c1", "token": 5, "fenced": True, "highest": 6}
    add(400, "invoke", "resource", "work", "c1", stale)
    add(400, "fail", "resource", "work", "c1", stale)
    add(450, "invoke", "c1.1", "lost", "c1", {"at": 450 * MS})
    add(451, "ok", "c1.1", "lost", "c1", {"at": 450 * MS, "token": 5, "why": "expired"})
    return History(tuple(ev))


def test_a_lane_per_candidate_with_tokens_overlap_and_the_rejected_write():
    history = _history()
    result = check(history.client_operations(), [])
    assert result["fencing"]["saved"] == 1 and result["anomalies"] == []
    lanes, marks = claim_lanes({"checkers": {"mutual-exclusion": result}}, end_ms=500.0)
    lead = ROLES.index("leader")
    assert [(s[0], s[1], s[3]) for s in lanes["c1"] if s[2] == lead] == [(100.0, 450.0, 5)]
    assert [(s[0], s[1], s[3]) for s in lanes["c2"] if s[2] == lead] == [(300.0, 451.0, 6)]  # to the last event
    assert all(s[2] != lead for s in lanes["c3"])  # it never led, and still has its lane
    assert sorted(marks) == [["c1", 300.0, 450.0, "overlap"], ["c2", 300.0, 450.0, "overlap"]]
    table, _ = operations_table(history)
    assert rejected_marks(table) == [["c1", 400.0, 400.0, "rejected"]]
