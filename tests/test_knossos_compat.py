"""Jepsen/Knossos histories read as Knossos reads them (knossos.model, knossos.history).

The small histories here are written for these tests; they reproduce the two
documented Knossos behaviours that Jepsen's data relies on. bench/knossos_compat.py
runs Knossos's own data/cas-register files (not copied here: EPL) through the
same CLI path, and the last test does so when a Knossos copy is at hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main

ROOT = Path(__file__).resolve().parents[1]


def check(capsys, path: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["check", str(path), *argv])
    out, err = capsys.readouterr()
    return code, out, err


# A read whose completion says nil while the register holds 3: Knossos's
# CASRegister lets a nil read match any state (Jepsen writes nil for a read
# it does not know the result of).
NIL_READ = """\
{:type :invoke, :process 0, :f :write, :value 3}
{:type :ok, :process 0, :f :write, :value 3}
{:type :invoke, :process 1, :f :read, :value nil}
{:type :ok, :process 1, :f :read, :value nil}
"""

# The same read of 3, but 0 was written after it completed: a real stale read.
STALE = """\
{:type :invoke, :process 0, :f :write, :value 3}
{:type :ok, :process 0, :f :write, :value 3}
{:type :invoke, :process 0, :f :write, :value 4}
{:type :ok, :process 0, :f :write, :value 4}
{:type :invoke, :process 1, :f :read, :value nil}
{:type :ok, :process 1, :f :read, :value 3}
"""


@pytest.mark.parametrize("model", ["register", "cas-register", "kv"])
def test_a_nil_read_matches_any_state_in_the_register_family(tmp_path, capsys, model):
    p = tmp_path / "h.edn"
    p.write_text(NIL_READ)
    code, out, err = check(capsys, p, "--format", "edn", "--model", model, "--initial", "0")
    assert code == 0, out + err
    stale = tmp_path / "s.edn"
    stale.write_text(STALE)
    assert check(capsys, stale, "--format", "edn", "--model", model, "--initial", "0")[0] == 1


def test_a_nil_read_is_a_read_of_nil_in_the_set_model_as_in_knossos(tmp_path, capsys):
    # knossos.model/Set compares (= s (:value op)): nil is not #{1}.
    p = tmp_path / "h.edn"
    p.write_text("{:type :invoke, :process 0, :f :add, :value 1}\n{:type :ok, :process 0, :f :add, :value 1}\n"
                 "{:type :invoke, :process 1, :f :read, :value nil}\n{:type :ok, :process 1, :f :read, :value nil}\n")
    assert check(capsys, p, "--format", "edn", "--model", "set")[0] == 1


def test_time_going_backwards_is_read_in_file_order_with_a_warning_naming_the_step(tmp_path, capsys):
    # File order: write 1 completes, then the read of 0 starts: stale. The
    # times claim the read came first; Knossos ignores them, and so must we.
    p = tmp_path / "h.edn"
    p.write_text(
        "{:type :invoke, :process 0, :f :write, :value 1, :time 500}\n"
        "{:type :ok, :process 0, :f :write, :value 1, :time 600}\n"
        "{:type :invoke, :process 1, :f :read, :value nil, :time 100}\n"
        "{:type :ok, :process 1, :f :read, :value 0, :time 200}\n"
    )
    code, out, err = check(capsys, p, "--format", "edn", "--model", "cas-register", "--initial", "0")
    assert code == 1, out + err
    assert "warning" in err and "line 3" in err and "100 after 600" in err and "file order" in err
    assert len(err.strip().splitlines()) == 1


def test_our_jsonl_keeps_its_strict_time_rule(tmp_path, capsys):
    p = tmp_path / "h.jsonl"
    p.write_text(json.dumps({"index": 0, "type": "invoke", "process": 0, "f": "read", "time": 50}) + "\n"
                 + json.dumps({"index": 1, "type": "ok", "process": 0, "f": "read", "value": 0, "time": 40}) + "\n")
    code, _, err = check(capsys, p, "--model", "cas-register")
    assert code == 2 and "time goes backwards" in err


def _jsonl_read(tmp_path: Path, completion: dict) -> Path:
    p = tmp_path / "h.jsonl"
    lines = [
        {"index": 0, "type": "invoke", "process": 0, "f": "write", "value": 3, "time": 1},
        {"index": 1, "type": "ok", "process": 0, "f": "write", "value": 3, "time": 2},
        {"index": 2, "type": "invoke", "process": 1, "f": "read", "time": 3},
        {"index": 3, "type": "ok", "process": 1, "f": "read", "time": 4, **completion},
    ]
    p.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return p


def test_jsonl_says_unknown_read_with_a_field_and_null_stays_a_read_of_nothing(tmp_path, capsys):
    unknown = _jsonl_read(tmp_path, {"value": None, "unknown": True})
    assert check(capsys, unknown, "--model", "cas-register")[0] == 0
    nothing = _jsonl_read(tmp_path, {"value": None})
    assert check(capsys, nothing, "--model", "cas-register")[0] == 1
    bad = _jsonl_read(tmp_path, {"value": None, "unknown": "yes"})
    code, _, err = check(capsys, bad, "--model", "cas-register")
    assert code == 2 and "unknown must be true or false" in err


def test_multi_register_txns_from_edn(tmp_path, capsys):
    good = (
        "{:type :invoke, :process 0, :f :txn, :value [[:write :x 1] [:write :y 2]]}\n"
        "{:type :ok, :process 0, :f :txn, :value [[:write :x 1] [:write :y 2]]}\n"
        "{:type :invoke, :process 1, :f :txn, :value [[:read :x nil] [:read :y nil]]}\n"
        "{:type :ok, :process 1, :f :txn, :value [[:read :x 1] [:read :y %s]]}\n"
    )
    p = tmp_path / "m.edn"
    p.write_text(good % "2")
    assert check(capsys, p, "--format", "edn", "--model", "multi-register", "--initial", '{"x": 0, "y": 0}')[0] == 0
    p.write_text(good % "nil")
    assert check(capsys, p, "--format", "edn", "--model", "multi-register", "--initial", '{"x": 0, "y": 0}')[0] == 0
    p.write_text(good % "0")
    assert check(capsys, p, "--format", "edn", "--model", "multi-register", "--initial", '{"x": 0, "y": 0}')[0] == 1


def _knossos_copy() -> str | None:
    for candidate in (os.environ.get("KNOSSOS_DIR"), "/work/.mirror/jepsen-io+knossos/repo"):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


@pytest.mark.skipif(_knossos_copy() is None, reason="no Knossos copy (set KNOSSOS_DIR to a checkout or git dir)")
def test_knossos_own_cas_register_data_gets_knossos_verdicts():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "knossos_compat.py"), _knossos_copy()],
                          capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    print(done.stdout[-400:])
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "of 120 files agree" in done.stdout or "files agree" in done.stdout
