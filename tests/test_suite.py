"""Suites: loading with file:line:field errors, judging runs against expectations, JUnit, exit codes (fake runner)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.cli import main
from harness.suite import (
    RunResult,
    SuiteError,
    judge,
    junit_xml,
    load_suite,
    run_suite,
    suite_exit_code,
    summary_table,
)

SUITE = """\
name: demo
defaults:
  nodes: 3
  time-limit: 20
tests:
  - name: partition
    nemesis: partition
    seeds: [1, 2]
  - name: stale-read
    nemesis: partition
    bugs: [stale-read]
    expect: anomaly
    seeds: [5]
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "suite.yaml"
    p.write_text(text)
    return p


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(SuiteError) as e:
        load_suite(write(tmp_path, text))
    return str(e.value)


def test_a_suite_is_defaults_plus_tests_each_seed_one_run(tmp_path):
    suite = load_suite(write(tmp_path, SUITE))
    assert suite.name == "demo"
    runs = suite.runs()
    assert [r.name for r in runs] == ["partition[seed=1]", "partition[seed=2]", "stale-read[seed=5]"]
    spec = runs[2].spec(store="elsewhere")
    assert (spec.nodes, spec.time_limit, spec.bugs, spec.seed, spec.test, spec.store) == (
        3, 20.0, ("stale-read",), 5, "stale-read", "elsewhere")
    assert runs[2].test.expect == "anomaly" and runs[0].test.expect == "valid"
    assert [r.name for r in suite.runs("stale")] == ["stale-read[seed=5]"]


def test_seed_count_draws_that_many_distinct_seeds(tmp_path):
    suite = load_suite(write(tmp_path, "tests:\n  - nemesis: kill\n    seed-count: 3\n"))
    assert len(set(suite.tests[0].seeds)) == 3
    assert suite.tests[0].name == "raftkv-register-kill"


@pytest.mark.parametrize("text, where", [
    (SUITE.replace("  time-limit: 20", "  time-limt: 20"), "suite.yaml:4: defaults.time-limt: unknown setting"),
    (SUITE.replace("    nemesis: partition\n    seeds: [1, 2]", "    nemesis: partiton\n    seeds: [1, 2]"),
     "suite.yaml:7: tests[0].nemesis: unknown nemesis 'partiton' (did you mean 'partition'?)"),
    (SUITE.replace("bugs: [stale-read]", "bugs: [stale-red]"), "suite.yaml:11: tests[1].bugs: unknown bug 'stale-red'"),
    (SUITE.replace("expect: anomaly", "expect: bug"), "suite.yaml:12: tests[1].expect: expected one of valid"),
    (SUITE.replace("seeds: [5]", "seeds: [5, x]"), "suite.yaml:13: tests[1].seeds: expected a list of whole numbers"),
    (SUITE.replace("  nodes: 3", "  nodes: three"), "suite.yaml:3: defaults.nodes: nodes: expected a whole number"),
    (SUITE + "    nodes: 0\n", "suite.yaml:14: tests[1].nodes: nodes must be at least 1"),
    (SUITE.replace("name: stale-read", "name: partition"), "suite.yaml:9: tests[1].name: 'partition' is already"),
    (SUITE.replace("    bugs: [stale-read]\n", ""), "suite.yaml:11: tests[1].expect: anomaly is for a deliberate-bug"),
    ("tests: []\n", "suite.yaml:1: tests: expected a non-empty list"),
    ("tsets: []\n", "suite.yaml:1: tsets: unknown suite key"),
    ("tests:\n  - nodes: 3\n   nemesis: x\n", "suite.yaml:3: malformed YAML"),
])
def test_a_validation_error_names_the_file_the_line_and_the_field(tmp_path, text, where):
    assert where in error_of(tmp_path, text)


def test_an_invalid_suite_starts_nothing_and_exits_2(tmp_path, capsys):
    p = write(tmp_path, SUITE.replace("nodes: 3", "nodes: 0"))
    assert main(["suite", str(p), "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("splitbrain suite: ") and "suite.yaml:3: defaults.nodes" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "store").exists()


# --- judging, with canned results ------------------------------------------------------------


def results(valid, sentence_key="k1"):
    checkers = {"linearizability": {"valid": valid if valid is not False else True}}
    if valid is False:
        checkers["split-brain"] = {"valid": False, "anomalies": [
            {"type": "two-leaders-one-term", "summary": f"n1 and n2 both led term 4 ({sentence_key})"}]}
    return {"valid": valid, "status": "complete", "checkers": checkers,
            "command": "splitbrain run --spec x/spec.yaml"}


def canned(table):
    """A fake runner: the test name -> (exit code, valid) it returns."""
    def runner(run):
        code, valid = table[run.test.name]
        if code == 2:
            return RunResult(2, None, None, 1.0, "the cluster did not come up: no Docker")
        return RunResult(code, Path(f"/store/{run.test.name}/{run.seed}"), results(valid), 12.0)
    return runner


def test_a_caught_bug_passes_and_the_same_bug_marked_valid_fails_with_its_report(tmp_path):
    text = SUITE + "  - name: stale-read-as-valid\n    nemesis: partition\n    bugs: [stale-read]\n    seeds: [5]\n"
    suite = load_suite(write(tmp_path, text))
    runner = canned({"partition": (0, True), "stale-read": (1, False), "stale-read-as-valid": (1, False)})
    outcome = run_suite(suite.runs(), runner)
    by = {j.run.test.name: j for j in outcome.judged}
    assert by["stale-read"].outcome == "pass" and "caught stale-read" in by["stale-read"].message
    bad = by["stale-read-as-valid"]
    assert bad.outcome == "failure"
    assert "n1 and n2 both led term 4" in bad.message and "/store/stale-read-as-valid/5/report.html" in bad.message
    assert outcome.exit_code == 1

    xml = ET.fromstring(ET.tostring(junit_xml("demo", outcome).getroot()))
    ts = xml.find("testsuite")
    assert (ts.get("tests"), ts.get("failures"), ts.get("errors")) == ("4", "1", "0")
    cases = {c.get("name"): c for c in ts.iter("testcase")}
    assert cases["stale-read[seed=5]"].find("failure") is None
    failure = cases["stale-read-as-valid[seed=5]"].find("failure")
    assert "report.html" in failure.get("message") and "both led term 4" in failure.get("message")
    props = {p.get("name"): p.get("value") for p in cases["stale-read[seed=5]"].iter("property")}
    assert props["verdict"] == "anomaly" and props["report"].endswith("report.html")


def test_a_deliberate_bug_not_caught_is_a_failure(tmp_path):
    suite = load_suite(write(tmp_path, SUITE))
    j = judge(suite.runs()[2], RunResult(0, Path("/s/r"), results(True), 3.0))
    assert j.outcome == "failure" and "NOT caught" in j.message and "/s/r/report.html" in j.message


def test_expect_any_records_without_judging(tmp_path):
    text = "tests:\n  - nemesis: kill\n    bugs: [no-persist-vote]\n    expect: any\n    seeds: [1]\n"
    run = load_suite(write(tmp_path, text)).runs()[0]
    assert judge(run, RunResult(0, Path("/r"), results(True))).outcome == "pass"
    assert judge(run, RunResult(1, Path("/r"), results(False))).outcome == "pass"


@pytest.mark.parametrize("table, code", [
    ({"partition": (0, True), "stale-read": (1, False)}, 0),
    ({"partition": (3, "unknown"), "stale-read": (1, False)}, 3),
    ({"partition": (1, False), "stale-read": (3, "unknown")}, 1),
    ({"partition": (0, True), "stale-read": (0, True)}, 1),
    ({"partition": (2, None), "stale-read": (0, True)}, 2),
])
def test_exit_code_2_beats_1_beats_3_beats_0(tmp_path, table, code):
    outcome = run_suite(load_suite(write(tmp_path, SUITE)).runs(), canned(table), parallel=2)
    assert outcome.exit_code == code == suite_exit_code(outcome.judged)
    assert "runs in" in summary_table(outcome)


def test_an_infra_error_is_a_junit_error_and_a_runner_exception_is_one_too(tmp_path):
    suite = load_suite(write(tmp_path, SUITE))
    outcome = run_suite(suite.runs(), canned({"partition": (2, None), "stale-read": (1, False)}))
    cases = list(junit_xml("demo", outcome).getroot().iter("testcase"))
    assert cases[0].find("error") is not None and "no Docker" in cases[0].find("error").get("message")

    def broken(run):
        raise RuntimeError("boom")
    assert run_suite(suite.runs()[:1], broken).judged[0].outcome == "error"


def test_fail_fast_starts_nothing_after_a_failure(tmp_path):
    suite = load_suite(write(tmp_path, SUITE))
    outcome = run_suite(suite.runs(), canned({"partition": (1, False), "stale-read": (1, False)}), fail_fast=True)
    assert [j.run.name for j in outcome.judged] == ["partition[seed=1]"]
    assert len(outcome.skipped) == 2
    skipped = [c for c in junit_xml("demo", outcome).getroot().iter("testcase") if c.find("skipped") is not None]
    assert len(skipped) == 2


FAKE_RUN = """\
import json, sys, pathlib, yaml
spec = yaml.safe_load(open(sys.argv[sys.argv.index("--spec") + 1]))
d = pathlib.Path(spec["store"]) / spec["test"] / f"20260101T000000.000Z-{spec['seed']}"
d.mkdir(parents=True)
bug = bool(spec["bugs"])
if spec["seed"] == 2:
    (d / "results.json").write_text(json.dumps({"valid": "unknown", "status": "infra-error", "seed": 2,
        "run": {"infra_error": "nemesis start-partition failed: n2 shows 0 DROP rules"}}))
    print("  run folder       " + str(d))
    sys.exit(2)
(d / "results.json").write_text(json.dumps({"valid": not bug, "status": "complete", "seed": spec["seed"],
    "checkers": {"set": {"valid": not bug, "lost": [{"index": 7, "value": 3, "process": 1, "call": 1e9, "ret": 2e9}],
                         "lost_count": 1}}, "command": "splitbrain run --spec x"}))
print("  run folder       " + str(d))
sys.exit(1 if bug else 0)
"""


def test_the_subprocess_runner_passes_the_resolved_spec_and_reads_the_run_folder(tmp_path):
    import sys

    from harness.suite import subprocess_runner

    script = tmp_path / "fake_run.py"
    script.write_text(FAKE_RUN)
    suite = load_suite(write(tmp_path, SUITE))
    runner = subprocess_runner(str(tmp_path / "store"), tmp_path / "specs", command=[sys.executable, str(script)])
    outcome = run_suite(suite.runs(), runner)  # partition seeds 1 and 2 (an infra error), stale-read seed 5
    assert [j.outcome for j in outcome.judged] == ["pass", "error", "pass"]
    assert "could not run: nemesis start-partition failed: n2 shows 0 DROP rules" in outcome.judged[1].message
    caught = outcome.judged[2]
    assert caught.result.results["seed"] == 5 and caught.result.run_dir.parent.name == "stale-read"
    assert "1 acknowledged add lost: element 3" in caught.message


def test_retry_errors_reruns_a_run_that_could_not_run_and_says_so_but_never_an_anomaly(tmp_path):
    suite = load_suite(write(tmp_path, SUITE))
    calls: list[str] = []

    def flaky(run):
        calls.append(run.name)
        if run.test.name == "partition" and calls.count(run.name) == 1:
            return RunResult(2, None, None, 1.0, "nemesis start-partition failed")
        valid = run.test.name != "stale-read"
        return RunResult(0 if valid else 1, Path("/r"), results(valid), 1.0)

    outcome = run_suite(suite.runs(), flaky, retry_errors=1)
    assert outcome.exit_code == 0 and len(calls) == 5  # each partition run twice, stale-read once
    assert "after 1 infrastructure error(s): could not run: nemesis start-partition failed" in outcome.judged[0].message
    assert run_suite(suite.runs()[:1], lambda r: RunResult(2, error="down"), retry_errors=2).exit_code == 2


def test_an_anomaly_a_system_documents_may_be_expected_without_a_bug_when_the_test_says_why(tmp_path):
    body = SUITE.replace("    bugs: [stale-read]\n", "    because: \"documented: reads may be stale\"\n")
    (tmp_path / "suite.yaml").write_text(body)
    suite = load_suite(tmp_path / "suite.yaml")
    assert [t.expect for t in suite.tests][1] == "anomaly"
    (tmp_path / "bad.yaml").write_text(SUITE.replace("    bugs: [stale-read]\n", "    because: 3\n"))
    with pytest.raises(SuiteError, match="because: expected a sentence"):
        load_suite(tmp_path / "bad.yaml")


def test_the_targets_suite_loads():
    suite = load_suite(Path(__file__).resolve().parent.parent / "suites" / "targets.yaml")
    assert {t.spec.target for t in suite.tests} >= {"etcd"}



SLOW_RUN = """
import pathlib, signal, sys, time
marks = pathlib.Path(sys.argv[-2]).parent.parent / "marks"
marks.mkdir(exist_ok=True)
def torn_down(signum, frame):
    (marks / "tore-down").write_text("SIGTERM")
    sys.exit(2)
signal.signal(signal.SIGTERM, torn_down)
(marks / "started").write_text("yes")
time.sleep(60)
"""


def test_stopping_the_subprocess_runner_passes_sigterm_to_the_run_under_way_and_starts_no_more(tmp_path):
    """A suite killed by CI's timeout must not leave its current run's cluster behind."""
    import sys
    import threading
    import time

    from harness.suite import subprocess_runner

    script = tmp_path / "slow_run.py"
    script.write_text(SLOW_RUN)
    suite = load_suite(write(tmp_path, SUITE))
    runner = subprocess_runner(str(tmp_path / "store"), tmp_path / "specs", command=[sys.executable, str(script)])
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("outcome", run_suite(suite.runs(), runner)))
    t.start()
    deadline = time.monotonic() + 20
    while not (tmp_path / "marks" / "started").exists():
        assert time.monotonic() < deadline, "the first run never started"
        time.sleep(0.05)
    runner.stop()
    t.join(20)
    assert not t.is_alive()
    assert (tmp_path / "marks" / "tore-down").read_text() == "SIGTERM"
    judged = box["outcome"].judged
    assert [j.outcome for j in judged] == ["error"] * 3
    assert all("not run: the suite was interrupted" in j.message for j in judged[1:])
