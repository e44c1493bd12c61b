"""`splitbrain check`, in process: exit 0 linearizable, 1 not, 3 unknown, 2 bad input (one line, no traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main

PEERS = Path(__file__).resolve().parent / "data" / "porcupine"


def ev(index, type, process, f, time, **more):
    return {"index": index, "type": type, "process": process, "f": f, "time": time, **more}


def write_jsonl(path: Path, *events: dict) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def good_register(path: Path) -> Path:
    return write_jsonl(
        path,
        ev(0, "invoke", 0, "write", 10, key="x", value=1),
        ev(1, "invoke", "nemesis", "start-partition", 11, value="halves"),
        ev(2, "ok", 0, "write", 20, key="x", value=1),
        ev(3, "invoke", 1, "read", 30, key="x"),
        ev(4, "ok", 1, "read", 40, key="x", value=1),
    )


def stale_read(path: Path) -> Path:
    """A read after a completed write that returns the old value: not linearizable."""
    return write_jsonl(
        path,
        ev(0, "invoke", 0, "write", 10, key="x", value=1),
        ev(1, "ok", 0, "write", 20, key="x", value=1),
        ev(2, "invoke", 0, "write", 30, key="x", value=2),
        ev(3, "ok", 0, "write", 40, key="x", value=2),
        ev(4, "invoke", 1, "read", 50, key="x"),
        ev(5, "ok", 1, "read", 60, key="x", value=1),
    )


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_linearizable_history_exits_0_with_a_summary(tmp_path, capsys):
    code, out, err = run(capsys, str(good_register(tmp_path / "h.jsonl")))
    assert code == 0, err
    assert ": linearizable (model kv, format jsonl)" in out
    assert "operations: 2 (2 ok, 0 fail, 0 info)" in out
    assert "keys: 1 settled, 0 unknown" in out and "time:" in out


def test_a_stale_read_exits_1_with_evidence(tmp_path, capsys):
    code, out, _ = run(capsys, str(stale_read(tmp_path / "h.jsonl")))
    assert code == 1
    assert "NOT linearizable" in out
    assert 'failing key: "x"' in out
    assert "longest linearizable prefix: 2 operations" in out
    assert "state after it: 2" in out
    assert "cannot be placed next:" in out and "op 4" in out


def test_json_output_is_the_result_dict_in_strict_json(tmp_path, capsys):
    code, out, _ = run(capsys, str(stale_read(tmp_path / "h.jsonl")), "--json")
    result = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert code == 1
    assert result["valid"] is False and result["model"] == "kv" and result["failing_key"] == "x"
    assert result["keys"]["settled"] == ["x"]
    assert result["evidence"]["state_after_prefix"] == "2"


def test_model_and_initial_are_honoured(tmp_path, capsys):
    path = write_jsonl(
        tmp_path / "h.jsonl",
        ev(0, "invoke", 0, "read", 1),
        ev(1, "ok", 0, "read", 2, value=5),
    )
    assert run(capsys, str(path), "--model", "register")[0] == 1  # starts at null
    assert run(capsys, str(path), "--model", "register", "--initial", "5")[0] == 0


def test_a_hard_history_with_a_tiny_time_limit_exits_3_unknown(tmp_path, capsys):
    # Fourteen concurrent writes, then a read of 0 and after it a read of 1:
    # no single order of the writes ends in both, and proving that means
    # exploring tens of thousands of orders, far beyond 1 µs.
    events = [ev(i, "invoke", i, "write", i, key="x", value=i) for i in range(14)]
    events += [ev(14 + i, "ok", i, "write", 14 + i, key="x", value=i) for i in range(14)]
    events.append(ev(28, "invoke", 99, "read", 28, key="x"))
    events.append(ev(29, "ok", 99, "read", 29, key="x", value=0))
    events.append(ev(30, "invoke", 99, "read", 30, key="x"))
    events.append(ev(31, "ok", 99, "read", 31, key="x", value=1))
    path = write_jsonl(tmp_path / "h.jsonl", *events)
    code, out, _ = run(capsys, str(path), "--model", "cas-register", "--time-limit", "0.000001")
    assert code == 3
    assert "UNKNOWN" in out and "out of time on" in out


def test_a_run_folder_uses_its_history_and_its_recorded_model(tmp_path, capsys):
    good_register(tmp_path / "history.jsonl")
    results = {"valid": True, "checks": {"set": {"checker": "set", "model": "set"},
                                         "linearizability": {"checker": "linearizability", "model": "cas-register"}}}
    (tmp_path / "results.json").write_text(json.dumps(results))
    code, out, _ = run(capsys, str(tmp_path), "--json")
    assert code == 0 and json.loads(out)["model"] == "cas-register"


def test_a_run_folder_without_results_takes_the_model_of_its_workload(tmp_path, capsys):
    write_jsonl(
        tmp_path / "history.jsonl",
        ev(0, "invoke", 0, "add", 1, value=1),
        ev(1, "ok", 0, "add", 2, value=1),
        ev(2, "invoke", 0, "read", 3),
        ev(3, "ok", 0, "read", 4, value=[1]),
    )
    (tmp_path / "spec.yaml").write_text("workload: set\n")
    code, out, _ = run(capsys, str(tmp_path), "--json")
    assert code == 0 and json.loads(out)["model"] == "set"


ELECTION_RUN = Path(__file__).resolve().parent / "data" / "election-run"


def test_an_election_run_folder_is_checked_again_by_its_own_checkers(tmp_path, capsys):
    """A ZooKeeper lock run (seed 1, every partition cutting the holder off) with its observer samples left
    out to keep it small: the mutual-exclusion checker finds its two leaders acting again."""
    code, out, _ = run(capsys, str(ELECTION_RUN))
    assert code == 1
    assert "ANOMALY (workload election, checked again by its own checkers)" in out
    assert "mutual-exclusion ANOMALY: two leaders acting at once: c3 (token 3) and c1 (token 5)" in out
    # Its facts in one line: both partitions cut a holder off, and another candidate took over within 2.5 s.
    assert "5 acquisitions, 4 leadership changes, 0.179 s without a leader; 1 overlap; 2 faults hit a holder, " \
           "failover mean 2.33 s, max 2.426 s; 143 writes accepted" in out
    code, out, _ = run(capsys, str(ELECTION_RUN), "--json")
    assert code == 1 and json.loads(out)["checkers"]["mutual-exclusion"]["fencing"]["fenced"] is False
    # A spec that does not read back is one line, not a traceback.
    for name in ("history.jsonl", "spec.yaml"):
        (tmp_path / name).write_text((ELECTION_RUN / name).read_text())
    (tmp_path / "spec.yaml").write_text((tmp_path / "spec.yaml").read_text().replace("ttl: 2.0", "ttl: banana"))
    code, _, err = run(capsys, str(tmp_path))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "spec.yaml cannot be read back" in err


def test_a_history_the_model_cannot_read_is_bad_input(tmp_path, capsys):
    path = good_register(tmp_path / "h.jsonl")
    assert "choose the model with --model" in one_line_error(capsys, str(path), "--model", "set")


def test_jepsen_edn_is_detected_and_checked(tmp_path, capsys):
    path = tmp_path / "history.edn"
    path.write_text(
        "{:index 0 :type :invoke :f :write :value 3 :process 0 :time 1}\n"
        "{:index 1 :type :ok :f :write :value 3 :process 0 :time 2}\n"
        "{:index 2 :type :invoke :f :read :value nil :process 1 :time 3}\n"
        "{:index 3 :type :ok :f :read :value 4 :process 1 :time 4}\n"
    )
    code, out, _ = run(capsys, str(path))
    assert code == 1 and "model cas-register, format edn" in out


# --- bad input: exit 2, one line, path:line: reason ---------------------------


def one_line_error(capsys, *argv: str) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_an_invalid_history_is_one_line_with_path_and_line(tmp_path, capsys):
    path = write_jsonl(
        tmp_path / "h.jsonl",
        ev(0, "invoke", 0, "read", 1),
        ev(1, "ok", 7, "read", 2),
        ev(2, "ok", 0, "read", 1),
    )
    err = one_line_error(capsys, str(path))
    assert f"{path}:2: ok for process 7 without an invoke (and 1 more problem)" in err


def test_malformed_json_is_one_line_with_its_line(tmp_path, capsys):
    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps(ev(0, "invoke", 0, "read", 1)) + "\n{oops\n")
    assert f"{path}:2: malformed JSON" in one_line_error(capsys, str(path))


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["MISSING"], "no such file or folder"),
        (["DIR"], "without history.jsonl"),
        (["GOOD", "--model", "btree"], "unknown model 'btree'"),
        (["GOOD", "--initial", "{nope"], "--initial must be a JSON value"),
        (["GOOD", "--time-limit", "-1"], "--time-limit must be a positive"),
        (["ODD"], "cannot tell the history format"),
        (["GOOD", "--format", "porcupine-etcd"], "GOOD"),
        (["GOOD", "--format", "edn"], "GOOD"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, fragment):
    good = good_register(tmp_path / "h.jsonl")
    (tmp_path / "empty-dir").mkdir()
    odd = tmp_path / "odd.dat"
    odd.write_text("hello there\n")
    names = {"MISSING": str(tmp_path / "nope.jsonl"), "DIR": str(tmp_path / "empty-dir"), "GOOD": str(good), "ODD": str(odd)}
    argv = [names.get(a, a) for a in argv]
    err = one_line_error(capsys, *argv)
    assert names.get(fragment, fragment) in err


def test_help_teaches_with_examples(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["check", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert "examples:" in out and "splitbrain check store/latest" in out and "exit codes" in out


# --- peer data ----------------------------------------------------------------

@pytest.mark.parametrize(
    "name, expected",
    [("jepsen/etcd_002.log", 0), ("jepsen/etcd_000.log", 1), ("kv/c01-ok.txt", 0), ("kv/c01-bad.txt", 1)],
)
def test_peer_porcupine_files_get_their_expected_exit_code(capsys, name, expected):
    code, out, _ = run(capsys, str(PEERS / name))
    assert code == expected
    assert ("format porcupine-etcd" if name.startswith("jepsen") else "format porcupine-kv") in out


def test_the_empty_peer_etcd_log_is_trivially_linearizable(capsys):
    assert run(capsys, str(PEERS / "jepsen/etcd_095.log"))[0] == 0


def test_our_history_exported_to_jepsen_edn_gets_the_same_verdict(tmp_path, capsys):
    from history.events import read_history
    from history.formats.jepsen_edn import write_jepsen_edn

    for make, expected in ((good_register, 0), (stale_read, 1)):
        ours = make(tmp_path / f"{make.__name__}.jsonl")
        edn = tmp_path / f"{make.__name__}.edn"
        write_jepsen_edn(edn, read_history(ours).events)
        code, out, _ = run(capsys, str(edn))
        assert code == expected and "model kv, format edn" in out  # keyed: independent tuples


# --- fuzzing the whole command: any input ends in an exit code, never a traceback

values = st.recursive(
    st.none() | st.integers(-3, 3) | st.text(max_size=2) | st.booleans(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=2),
    max_leaves=5,
)


@st.composite
def well_formed_histories(draw):
    """Histories that pass the validator but carry any f, key and value."""
    events, open_ops = [], {}
    for i in range(draw(st.integers(0, 8))):
        p = draw(st.integers(0, 2))
        if p in open_ops:
            f, key = open_ops.pop(p)
            kind = draw(st.sampled_from(["ok", "fail"]))
        else:
            f = draw(st.sampled_from(["read", "write", "cas", "add", "get", "put", "append", "acquire", "bogus"]))
            key = draw(st.none() | st.sampled_from(["a", "b"]) | st.integers(0, 1))
            kind = "invoke"
            open_ops[p] = (f, key)
        events.append(ev(i, kind, p, f, i, key=key, value=draw(values)))
    return events


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(well_formed_histories(), st.sampled_from(["register", "cas-register", "kv", "set", "mutex", "etcd", "string-kv"]))
def test_fuzz_any_well_formed_history_under_any_model_gives_an_exit_code(tmp_path, capsys, events, model):
    path = write_jsonl(tmp_path / "fuzz.jsonl", *events)
    code, out, err = run(capsys, str(path), "--model", model, "--json")
    assert code in (0, 1, 2, 3)
    if code == 2:
        assert err.count("\n") == 1
    else:
        assert json.loads(out)["model"] == model


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=80), st.sampled_from(["h.jsonl", "h.edn", "h.log", "h.txt"]))
def test_fuzz_garbage_files_exit_2_or_a_verdict_never_a_traceback(tmp_path, capsys, data, name):
    path = tmp_path / name
    path.write_bytes(data)
    code, _, err = run(capsys, str(path))
    assert code in (0, 1, 2, 3)
    if code == 2:
        assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("module", ["harness", "harness.cli"])
def test_python_dash_m_gives_the_same_one_line_error_as_the_console_script(module, tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", module, "check", str(tmp_path / "missing.jsonl")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "missing.jsonl" in r.stderr
    assert "Traceback" not in r.stderr


# --- the fuzzers widened: deep nesting, huge and non-finite numbers, long bodies

# (JSON text of a value, whether history/bounded.py must refuse it). Built as
# text: a Python value 3,000 deep could not be dumped or printed by hypothesis.
_DEPTH_LIMIT = 100
hostile_json = st.one_of(
    values.map(lambda v: (json.dumps(v), False)),
    st.integers(1, 300).map(lambda n: ("9" * n, False)),
    st.integers(301, 6000).map(lambda n: ("-" * (n % 2) + "9" * n, True)),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999"]).map(lambda t: (t, True)),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: (json.dumps(f), False)),
    st.text(min_size=1000, max_size=20_000).map(lambda t: (json.dumps(t), False)),
    st.tuples(st.integers(1, 3000), st.booleans()).map(
        lambda t: (('{"k": ' * t[0] + "1" + "}" * t[0]) if t[1] else ("[" * t[0] + "1" + "]" * t[0]),
                   t[0] + 1 > _DEPTH_LIMIT)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow, HealthCheck.data_too_large])
@given(hostile_json, st.sampled_from(["value", "time", "index", "process", "key"]))
def test_fuzz_hostile_values_anywhere_are_refused_in_one_line_or_checked(tmp_path, capsys, fragment, field):
    text, beyond = fragment
    write = json.dumps(ev(0, "invoke", 0, "write", 1, value=1) | {field: "HOLE"})
    path = tmp_path / "h.jsonl"
    path.write_text(write.replace('"HOLE"', text) + "\n" + json.dumps(ev(1, "ok", 0, "write", 2, value=1)) + "\n")
    code, out, err = run(capsys, str(path), "--model", "cas-register")
    assert "Traceback" not in err and "internal error" not in err
    assert code in (0, 1, 2, 3)
    if code == 2:
        assert err.count("\n") == 1
    if beyond:
        assert code == 2 and "refused" in err, (code, err[:300])


def test_a_write_of_nan_read_back_is_refused_not_a_wrong_verdict(tmp_path, capsys):
    path = tmp_path / "h.jsonl"
    path.write_text(
        '{"index": 0, "type": "invoke", "process": 0, "f": "write", "value": NaN, "time": 1}\n'
        '{"index": 1, "type": "ok", "process": 0, "f": "write", "value": NaN, "time": 2}\n'
        '{"index": 2, "type": "invoke", "process": 1, "f": "read", "time": 3}\n'
        '{"index": 3, "type": "ok", "process": 1, "f": "read", "value": NaN, "time": 4}\n'
    )
    code, out, err = run(capsys, str(path), "--model", "cas-register")
    assert code == 2 and "NaN is not a number JSON allows" in err and err.count("\n") == 1
