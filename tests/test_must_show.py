"""The campaign script's table and tallies, over hand-made results (no Docker)."""
import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "must_show", Path(__file__).resolve().parent.parent / "bench" / "must_show.py")
ms = importlib.util.module_from_spec(_spec)
sys.modules["must_show"] = ms  # dataclasses look their module up
_spec.loader.exec_module(ms)


def _row(scenario, seed, code, checkers, found=None, first_fault=10.0):
    res = {"exit_code": code, "checkers": checkers, "timings": {"run_s": 80.0},
           "anomalies_found_at": found or {}}
    return ms.Row(scenario, seed, code, 81.0, run_dir="/nonexistent", results=res, _first_fault=first_fault)


def test_parse_seeds():
    assert ms.parse_seeds("1-3,7") == [1, 2, 3, 7]


def test_anomaly_types_and_found_after():
    r = _row("E", 1, 1, {
        "split-brain": {"valid": False, "anomalies": [{"type": "dual-serving"}, {"type": "dual-serving"}]},
        "linearizability": {"valid": False},
    }, {"split-brain": {"at_s": 17.5, "after_faults": ["start-partition"]},
        "linearizability": {"at_s": 13.25, "after_faults": ["start-partition"]}})
    assert ms.anomaly_types(r.results) == ["dual-serving", "non-linearizable"]
    assert r.found_after(("split-brain", "linearizability")) == 3.25
    assert ms.faults_before(r, ms.SCENARIOS["E"]) == "start-partition"
    assert ms.met(ms.SCENARIOS["E"], r)


def test_tally_and_table():
    rows = [_row("B", s, 1, {"linearizability": {"valid": False}}, {"linearizability": {"at_s": 10.0 + s - 3, "after_faults": []}})
            for s in (1, 2, 3, 4)]
    rows.append(_row("B", 5, 0, {"linearizability": {"valid": True}}))
    rows.append(_row("C", 1, 1, {"set": {"valid": False, "lost_count": 3}}))
    rows.append(_row("A", 1, 0, {"linearizability": {"valid": True}, "split-brain": {"valid": True}}))
    t = ms.tallies(rows)
    assert "B: caught 4/5 (need >= 4/5) OK; first anomalous op -2.0 to 1.0 s after the first fault" in t
    assert "C: caught 1/1 (need >= 4/5) SHORT" in t
    assert "A: valid 1/1" in t and "A: valid 1/1 (need 1/1) OK" in t
    table = ms.table(rows)
    assert "| none " in table  # an anomaly before any fault says so
    assert "lost-writes(3)" in table
    assert table.count("\n") == len(rows) + 1


def test_first_fault_from_history(tmp_path):
    h = tmp_path / "history.jsonl"
    h.write_text('{"index": 0, "type": "invoke", "process": 1, "f": "read", "time": 1000}\n'
                 '{"index": 1, "type": "invoke", "process": "nemesis", "f": "kill", "time": 5500000000}\n')
    assert ms.first_fault_in(h) == 5.5
    assert ms.first_fault_in(tmp_path / "missing.jsonl") is None
