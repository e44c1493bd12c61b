"""The campaign script's table and tallies, over hand-made results (no Docker)."""
import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "must_show", Path(__file__).resolve().parent.parent / "bench" / "must_show.py")
ms = importlib.util.module_from_spec(_spec)
sys.modules["must_show"] = ms  # dataclasses look their module up
_spec.loader.exec_module(ms)


def _row(scenario, seed, code, checkers, found=None):
    res = {"exit_code": code, "checkers": checkers, "timings": {"run_s": 80.0},
           "anomalies_found_at": found or {}}
    return ms.Row(scenario, seed, code, 81.0, run_dir="/tmp/x", results=res)


def test_parse_seeds():
    assert ms.parse_seeds("1-3,7") == [1, 2, 3, 7]


def test_anomaly_types_and_found_after():
    r = _row("E", 1, 1, {
        "split-brain": {"valid": False, "anomalies": [{"type": "dual-serving"}, {"type": "dual-serving"}]},
        "linearizability": {"valid": False},
    }, {"split-brain": {"into_faults_s": 7.5}, "linearizability": {"into_faults_s": 3.25}})
    assert ms.anomaly_types(r.results) == ["dual-serving", "non-linearizable"]
    assert r.found_after(("split-brain", "linearizability")) == 3.25
    assert ms.met(ms.SCENARIOS["E"], r)


def test_tally_and_table():
    rows = [_row("B", s, 1, {"linearizability": {"valid": False}}, {"linearizability": {"into_faults_s": s}})
            for s in (1, 2, 3, 4)]
    rows.append(_row("B", 5, 0, {"linearizability": {"valid": True}}))
    rows.append(_row("C", 1, 1, {"set": {"valid": False, "lost_count": 3}}))
    rows.append(_row("A", 1, 0, {"linearizability": {"valid": True}, "split-brain": {"valid": True}}))
    t = ms.tallies(rows)
    assert "B: caught 4/5 (need >= 4/5) OK; first anomaly 1.0-4.0 s into the faults" in t
    assert "C: caught 1/1 (need >= 4/5) SHORT" in t
    assert "A: valid 1/1" in t and "A: valid 1/1 (need 1/1) OK" in t
    table = ms.table(rows)
    assert "lost-writes(3)" in table
    assert table.count("\n") == len(rows) + 1
