"""`splitbrain export`: a history handed to Knossos/Elle (EDN) or Porcupine gets the same verdict back.

Round trip: check our history, export it, check the export with the format's
reader; the verdicts must agree. Reads never return nil here, because a read
of nil means "unknown" to Knossos's register models (the export warns; see
the last tests).
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main


def ev(index, type, process, f, time, **more):
    return {"index": index, "type": type, "process": process, "f": f, "time": time, **more}


def write_jsonl(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return int(code), out, err


@st.composite
def register_histories(draw, keys=(None,)):
    """Valid register histories: read/write/cas on small ints, some fail and
    info, strictly increasing times (Porcupine's log has line order only)."""
    events, open_ops, crashed = [], {}, set()
    t = 0
    for _ in range(draw(st.integers(1, 14))):
        p = draw(st.integers(0, 3))
        if p in crashed:
            continue
        t += draw(st.integers(1, 5))
        if p in open_ops:
            f, key, value = open_ops.pop(p)
            kind = draw(st.sampled_from(["ok", "ok", "ok", "fail", "info"]))
            if kind == "info":
                crashed.add(p)
            out = draw(st.integers(0, 2)) if f == "read" and kind == "ok" else (None if f == "read" else value)
            events.append(ev(len(events), kind, p, f, t, key=key, value=out))
        else:
            f = draw(st.sampled_from(["read", "write", "cas"]))
            key = draw(st.sampled_from(keys))
            value = {"read": None, "write": draw(st.integers(0, 2)),
                     "cas": [draw(st.integers(0, 2)), draw(st.integers(0, 2))]}[f]
            open_ops[p] = (f, key, value)
            events.append(ev(len(events), "invoke", p, f, t, key=key, value=value))
    for e in events:
        if e["key"] is None:
            del e["key"]
    return events


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(register_histories())
def test_a_register_history_exported_to_edn_and_porcupine_gets_the_same_verdict(tmp_path, capsys, events):
    ours = write_jsonl(tmp_path / "h.jsonl", events)
    expected, out, err = cli(capsys, "check", str(ours), "--model", "cas-register", "--initial", "0")
    assert expected in (0, 1), out + err
    edn, porcupine = tmp_path / "h.edn", tmp_path / "h.log"
    assert cli(capsys, "export", str(ours), "--format", "edn", "-o", str(edn))[0] == 0
    code, out, err = cli(capsys, "export", str(ours), "--format", "porcupine", "-o", str(porcupine))
    if code == 2:
        # Porcupine's log holds only operations that may have happened: with none, one line says so.
        assert all(e["type"] in ("invoke", "fail") for e in events), err
        assert "no operations" in err and len(err.strip().splitlines()) == 1
        return
    assert code == 0, err
    code, out, err = cli(capsys, "check", str(edn), "--format", "edn", "--model", "cas-register", "--initial", "0")
    assert code == expected, (events, out, err)
    code, out, err = cli(capsys, "check", str(porcupine), "--format", "porcupine-etcd", "--initial", "0")
    assert code == expected, (events, porcupine.read_text(), out, err)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(register_histories(keys=("a", "b", 7)))
def test_a_keyed_history_exported_to_edn_gets_the_same_kv_verdict(tmp_path, capsys, events):
    ours = write_jsonl(tmp_path / "h.jsonl", events)
    expected = cli(capsys, "check", str(ours), "--model", "kv", "--initial", "0")[0]
    edn = tmp_path / "h.edn"
    assert cli(capsys, "export", str(ours), "--format", "edn", "-o", str(edn))[0] == 0
    assert cli(capsys, "check", str(edn), "--format", "edn", "--model", "kv", "--initial", "0")[0] == expected


def test_the_stale_read_is_still_caught_after_each_export(tmp_path, capsys):
    events = [ev(0, "invoke", 0, "write", 1, value=1), ev(1, "ok", 0, "write", 2, value=1),
              ev(2, "invoke", 1, "read", 3), ev(3, "ok", 1, "read", 4, value=0)]
    ours = write_jsonl(tmp_path / "h.jsonl", events)
    assert cli(capsys, "check", str(ours), "--model", "cas-register", "--initial", "0")[0] == 1
    code, edn, _ = cli(capsys, "export", str(ours), "--format", "edn")
    assert code == 0 and edn.count("\n") == 4 and ":f :read" in edn
    (tmp_path / "x.edn").write_text(edn)
    assert cli(capsys, "check", str(tmp_path / "x.edn"), "--model", "cas-register", "--initial", "0")[0] == 1
    code, log, _ = cli(capsys, "export", str(ours), "--format", "porcupine")
    assert code == 0 and log.splitlines()[-1] == "INFO  jepsen.util - 1\t:ok\t:read\t0"


def test_a_string_kv_history_exports_to_porcupine_kv_and_back(tmp_path, capsys):
    events = [ev(0, "invoke", 0, "put", 1, key="k", value="x"), ev(1, "ok", 0, "put", 2, key="k", value="x"),
              ev(2, "invoke", 1, "append", 3, key="k", value="y"), ev(3, "ok", 1, "append", 4, key="k", value="y"),
              ev(4, "invoke", 2, "get", 5, key="k"), ev(5, "ok", 2, "get", 6, key="k", value="%s")]
    for read, expected in (("xy", 0), ("x", 1)):
        evs = [dict(e) for e in events]
        evs[-1]["value"] = read
        ours = write_jsonl(tmp_path / "kv.jsonl", evs)
        assert cli(capsys, "check", str(ours), "--model", "string-kv")[0] == expected
        out = tmp_path / "kv.txt"
        assert cli(capsys, "export", str(ours), "--format", "porcupine", "-o", str(out))[0] == 0
        assert cli(capsys, "check", str(out), "--format", "porcupine-kv")[0] == expected


def test_a_multi_register_txn_exports_with_knossos_keywords(tmp_path, capsys):
    events = [ev(0, "invoke", 0, "txn", 1, value=[["write", "x", 1]]), ev(1, "ok", 0, "txn", 2, value=[["write", "x", 1]]),
              ev(2, "invoke", 1, "txn", 3, value=[["read", "x", None]]), ev(3, "ok", 1, "txn", 4, value=[["read", "x", 0]])]
    ours = write_jsonl(tmp_path / "t.jsonl", events)
    code, edn, _ = cli(capsys, "export", str(ours), "--format", "edn")
    assert code == 0 and "[[:read \"x\" 0]]" in edn
    (tmp_path / "t.edn").write_text(edn)
    assert cli(capsys, "check", str(tmp_path / "t.edn"), "--model", "multi-register", "--initial", '{"x": 0}')[0] == 1


def test_reads_of_nil_are_counted_in_a_warning_and_unknown_reads_are_not(tmp_path, capsys):
    events = [ev(0, "invoke", 0, "read", 1), ev(1, "ok", 0, "read", 2, value=None),
              ev(2, "invoke", 1, "read", 3), ev(3, "ok", 1, "read", 4, value=None, unknown=True)]
    ours = write_jsonl(tmp_path / "h.jsonl", events)
    code, _, err = cli(capsys, "export", str(ours), "--format", "edn")
    assert code == 0 and "warning: 1 read of nil" in err


def test_porcupine_export_refuses_several_keys_without_key_and_other_fs_in_one_line(tmp_path, capsys):
    events = [ev(0, "invoke", 0, "write", 1, key="a", value=1), ev(1, "ok", 0, "write", 2, key="a", value=1),
              ev(2, "invoke", 0, "write", 3, key="b", value=1), ev(3, "ok", 0, "write", 4, key="b", value=1)]
    ours = write_jsonl(tmp_path / "h.jsonl", events)
    code, _, err = cli(capsys, "export", str(ours), "--format", "porcupine")
    assert code == 2 and "--key" in err and err.count("\n") == 1
    code, out, _ = cli(capsys, "export", str(ours), "--format", "porcupine", "--key", '"b"')
    assert code == 0 and out.count("\n") == 2
    adds = write_jsonl(tmp_path / "s.jsonl", [ev(0, "invoke", 0, "add", 1, value=1)])
    code, _, err = cli(capsys, "export", str(adds), "--format", "porcupine")
    assert code == 2 and "'add'" in err and err.count("\n") == 1


def test_export_of_a_run_folder_reads_its_history(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    write_jsonl(run / "history.jsonl", [ev(0, "invoke", 0, "write", 1, key="x", value=1),
                                       ev(1, "ok", 0, "write", 2, key="x", value=1)])
    code, out, _ = cli(capsys, "export", str(run), "--format", "edn")
    assert code == 0 and out.splitlines()[0].startswith("{:index 0 :type :invoke") and '["x" 1]' in out
