"""The detection matrix: loading (file:line:field errors), controls shared by rows, the table's figures,
the harness-failure exit code, resuming, the Markdown and the run index.

The runs here are a fake of the harness's runner (what `splitbrain run --spec` hands back to the suite
machinery: an exit code and results.json's fields), not of a store: the matrix's own logic is what is
tested. tests/test_matrix_docker.py runs a small matrix on real clusters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.matrix import (
    exit_code,
    fingerprint,
    load_matrix,
    markdown,
    matrix_from_flags,
    parse_seeds,
    run_matrix,
    table,
    write_table,
)
from harness.suite import RunResult, SuiteError

MATRIX = """\
name: demo
defaults:
  nodes: 3
  time-limit: 20
seeds: 3
mixes:
  partition: partition
  kp: {nemesis: [kill, partition], nemesis-interval: 2}
bugs:
  stale-read: [partition]
  ack-before-replicate: null
  lease-no-checkquorum: {mixes: [partition], options: {lease_reads: true}}
"""


def write(tmp_path: Path, text: str = MATRIX) -> Path:
    p = tmp_path / "matrix.yaml"
    p.write_text(text)
    return p


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(SuiteError) as e:
        load_matrix(write(tmp_path, text))
    return str(e.value)


class FakeHarness:
    """Answers each run as `splitbrain run` would: valid, or an anomaly found some seconds after the first
    fault, per (test, seed) from a table given up front; counts what it was asked to run."""

    def __init__(self, outcomes: dict[tuple[str, int], object]):
        self.outcomes = outcomes
        self.asked: list[tuple[str, int]] = []

    def __call__(self, run) -> RunResult:
        key = (run.test.name, run.seed)
        self.asked.append(key)
        found = self.outcomes.get(key, "valid")
        if found == "error":
            return RunResult(2, None, None, 1.0, "the cluster did not come up")
        if found == "valid":
            return RunResult(0, None, {"valid": True, "status": "complete", "checkers": {}}, 30.0)
        results = {"valid": False, "status": "complete", "first_fault_s": 10.0,
                   "checkers": {"linearizability": {"valid": False, "checker": "linearizability"}},
                   "anomalies_found_at": {"linearizability": {"at_s": 10.0 + found, "into_faults_s": found + 2,
                                                              "from_first_fault_s": found}}}
        return RunResult(1, None, results, 30.0)


def test_rows_are_bugs_under_their_mixes_and_controls_are_shared_by_equal_settings(tmp_path):
    m = load_matrix(write(tmp_path))
    assert m.name == "demo" and m.seeds == (1, 2, 3)
    assert [(r.bug, r.mix) for r in m.rows] == [("stale-read", "partition"), ("ack-before-replicate", "partition"),
                                               ("ack-before-replicate", "kp"), ("lease-no-checkquorum", "partition")]
    # stale-read and ack-before-replicate under partition share one control; the lease row's options make its own.
    assert [r.control for r in m.rows] == ["demo-correct-partition", "demo-correct-partition", "demo-correct-kp",
                                           "demo-correct-partition-as-lease-no-checkquorum"]
    assert [r.test.name for r in m.controls] == [r.control for r in m.rows[1:]]
    kp = m.rows[2].test.spec
    assert (kp.nemesis, kp.nemesis_interval, kp.nodes, kp.bugs) == (("kill", "partition"), 2.0, 3,
                                                                     ("ack-before-replicate",))
    lease_ctl = m.controls[2].test.spec
    assert lease_ctl.bugs == () and lease_ctl.options == {"lease_reads": True}
    assert len(m.runs()) == (4 + 3) * 3


def test_flags_seeds_and_filters_override_the_file(tmp_path):
    m = load_matrix(write(tmp_path), seeds=(7, 8), overrides={"time-limit": 5}, only_bugs=("ack-before-replicate",),
                    only_mixes=("kp",))
    assert [(r.bug, r.mix) for r in m.rows] == [("ack-before-replicate", "kp")]
    assert m.seeds == (7, 8) and m.rows[0].test.spec.time_limit == 5.0
    flags = matrix_from_flags(("stale-read", "no-fsync"), ("partition", "dk=lose-unsynced,kill"), (1,),
                              {"target": "raftkv"})
    assert [(r.bug, r.mix) for r in flags.rows] == [("stale-read", "partition"), ("stale-read", "dk"),
                                                   ("no-fsync", "partition"), ("no-fsync", "dk")]
    assert flags.rows[1].test.spec.nemesis == ("lose-unsynced", "kill")


@pytest.mark.parametrize("text, expected", [
    (MATRIX.replace("seeds: 3", "seedz: 3"), "matrix.yaml:5: seedz: unknown matrix key"),
    (MATRIX.replace("stale-read: [partition]", "stale-read: [partiton]"),
     "matrix.yaml:10: bugs.stale-read: no mix named 'partiton'"),
    (MATRIX.replace("stale-read: [partition]", "stale-reed: [partition]"),
     "matrix.yaml:10: bugs.stale-reed x partition.bugs: unknown bug 'stale-reed'"),
    (MATRIX.replace("seeds: 3", "seeds: [1, 1]"), "matrix.yaml:5: seeds: a seed is listed twice"),
    (MATRIX.replace("time-limit: 20", "time-limit: soon"), "matrix.yaml:4: defaults.time-limit:"),
    (MATRIX.replace("kp: {nemesis: [kill, partition], nemesis-interval: 2}", "kp: {nemesis-interval: 2}"),
     "matrix.yaml:8: mixes.kp: a mix needs its nemesis"),
    (MATRIX.replace("options: {lease_reads: true}", "options: {lease_reads: true}, bugs: [no-fsync]"),
     "matrix.yaml:12: bugs.lease-no-checkquorum.bugs: a row's bug is its key"),
    ("mixes: {p: partition}\n", "matrix.yaml:1: bugs: missing"),
])
def test_a_mistake_in_the_file_is_one_line_naming_the_line_and_the_field(tmp_path, text, expected):
    assert expected in error_of(tmp_path, text)


def test_seeds_are_a_count_a_range_or_a_list():
    assert parse_seeds("3") == (1, 2, 3) and parse_seeds("4-6") == (4, 5, 6) and parse_seeds("2,9") == (2, 9)
    for bad in ("0", "5-2", "1,1", "x"):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def test_the_table_has_rates_times_and_the_controls_false_positives(tmp_path):
    m = load_matrix(write(tmp_path))
    fake = FakeHarness({("demo-stale-read-partition", 1): 4.0, ("demo-stale-read-partition", 2): 9.0,
                        ("demo-stale-read-partition", 3): 2.5, ("demo-ack-before-replicate-kp", 2): 30.0,
                        ("demo-lease-no-checkquorum-partition", 3): "error"})
    cells = run_matrix(m, fake, tmp_path / "out")
    assert len(fake.asked) == 21 and len(cells) == 21
    t = table(m, cells)
    rows = {(r["bug"], r["mix"]): r for r in t["rows"]}
    sr = rows[("stale-read", "partition")]
    assert (sr["caught"], sr["seeds_run"], sr["detection_rate"], sr["median_s"], sr["worst_s"]) == (3, 3, 1.0, 4.0, 9.0)
    assert sr["false_positives"] == 0 and sr["control_seeds_run"] == 3
    ab = rows[("ack-before-replicate", "kp")]
    assert (ab["caught"], ab["median_s"], ab["worst_s"]) == (1, 30.0, 30.0)
    assert rows[("ack-before-replicate", "partition")]["caught"] == 0
    assert rows[("lease-no-checkquorum", "partition")]["errors"] == 1
    assert not t["harness_failure"] and exit_code(t) == 2  # a run could not run
    md = markdown(t)
    assert "| stale-read | partition | 3/3 | 4.0 | 9.0 | 0/3 |" in md
    assert "1 could not run" in md and "HARNESS FAILURE" not in md


def test_an_anomaly_on_the_correct_store_is_a_harness_failure(tmp_path):
    m = load_matrix(write(tmp_path), only_bugs=("stale-read",))
    cells = run_matrix(m, FakeHarness({("demo-stale-read-partition", 1): 3.0, ("demo-correct-partition", 2): 7.0}),
                       tmp_path / "out")
    t = table(m, cells)
    assert t["harness_failure"] and t["false_positives"] == 1 and exit_code(t) == 1
    assert t["rows"][0]["false_positives"] == 1
    md = markdown(t)
    assert "HARNESS FAILURE: the correct store had an anomaly in 1 run(s): partition (seeds [2])" in md
    clean = run_matrix(m, FakeHarness({("demo-stale-read-partition", 1): 3.0}), tmp_path / "out2")
    assert exit_code(table(m, clean)) == 0


def test_a_matrix_run_again_into_its_folder_runs_only_what_did_not_finish(tmp_path):
    m = load_matrix(write(tmp_path), only_bugs=("stale-read",))
    out = tmp_path / "out"
    first = FakeHarness({("demo-stale-read-partition", 1): 3.0, ("demo-correct-partition", 3): "error"})
    run_matrix(m, first, out)
    assert len(first.asked) == 6
    again = FakeHarness({("demo-stale-read-partition", 1): 3.0})
    cells = run_matrix(m, again, out)
    assert again.asked == [("demo-correct-partition", 3)]  # only the one that could not run
    t = table(m, cells)
    assert t["runs"] == 6 and t["errors"] == 0 and exit_code(t) == 0
    assert t["rows"][0]["caught"] == 1
    # A different setting is a different run: nothing is reused.
    longer = load_matrix(write(tmp_path), only_bugs=("stale-read",), overrides={"time-limit": 21})
    assert fingerprint(longer.runs()[0].spec()) != fingerprint(m.runs()[0].spec())
    third = FakeHarness({})
    run_matrix(longer, third, out)
    assert len(third.asked) == 6


def test_the_table_is_written_as_json_and_markdown_and_the_index_lists_it(tmp_path):
    from reports.index import matrices, render_index

    store = tmp_path / "store"
    (store / "t" / "20261202T000000.000Z").mkdir(parents=True)
    (store / "t" / "20261202T000000.000Z" / "results.json").write_text(json.dumps({"valid": True, "test": "t"}))
    m = load_matrix(write(tmp_path), only_bugs=("stale-read",))
    out = store / "_matrix" / "demo-1"
    t = table(m, run_matrix(m, FakeHarness({("demo-stale-read-partition", 2): 5.0}), out))
    js, md = write_table(out, t, "splitbrain matrix matrix.yaml")
    assert json.loads(js.read_text())["rows"][0]["caught"] == 1
    assert md.read_text().startswith("# matrix demo\n\n`splitbrain matrix matrix.yaml`")
    listed = matrices(store)
    assert [x["name"] for x in listed] == ["demo"] and listed[0]["href"] == "_matrix/demo-1/matrix.md"
    html = render_index(store)
    assert "Detection matrices" in html and "_matrix/demo-1/matrix.md" in html


def test_the_command_lists_a_valid_matrix_and_refuses_a_bad_one_in_one_line(tmp_path, capsys):
    assert main(["matrix", str(write(tmp_path)), "--list", "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "stale-read x partition" in out and "14 runs: 4 rows and 3 controls x 2 seeds [1, 2]" in out
    assert main(["matrix", str(write(tmp_path, MATRIX.replace("seeds: 3", "seeds: -1")))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "seeds: expected a count from 1 to 100" in err
    assert main(["matrix", "--bug", "stale-read"]) == 2
    assert "give a matrix FILE, or at least one --bug and one --mix" in capsys.readouterr().err
