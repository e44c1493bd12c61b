"""A checker written outside splitbrain: defined here, registered through the registry, run by a run.

Its anomaly must reach every reader of verdicts unchanged: results.json, the
run summary, the suite's sentences and the report (data and page), each with
the checker's own sentence. Nothing in splitbrain names it.
"""

from __future__ import annotations

import contextlib
import io
import json

from test_run_loop_command import spec

from checkers.registry import CHECKERS, read_verdicts
from checkers.verdict import Anomaly, CheckInput, Verdict
from harness.commands.run import execute
from harness.memory import MemoryCluster, memory_parts
from harness.suite import anomaly_sentences
from reports.data import load_run, report_data
from reports.render import render_html

SENTENCE = "every add of a multiple of 5 was suspicious to this test's own checker"


class FivesChecker:
    """Flags the first acknowledged add of a multiple of 5 (any history of the set workload has one)."""

    name = "fives"

    def check(self, history: CheckInput) -> Verdict:
        fives = [o for o in history.ops if o.f == "add" and o.status == "ok" and o.value % 5 == 0]
        if not fives:
            return Verdict(self.name, "unknown", reason="no add of a multiple of 5 was acknowledged")
        first = fives[0]
        anomaly = Anomaly("suspicious-five", SENTENCE, first.call, first.ret, (first.index,),
                          (first.node,) if first.node else (), {"value": first.value})
        return Verdict(self.name, False, (anomaly,), details={"fives": len(fives)})


def test_a_checker_registered_by_a_test_runs_and_its_anomaly_reaches_results_summary_and_report(tmp_path):
    out = io.StringIO()
    with CHECKERS.registered("fives", FivesChecker):
        code = execute(spec(tmp_path, checkers=("fives",)), None, quiet=True, out=out,
                       parts=memory_parts(MemoryCluster()))
    assert code == 1, out.getvalue()
    run = (tmp_path / "store" / "latest").resolve()
    results = json.loads((run / "results.json").read_text())

    # results.json: its verdict in the uniform fields, its own details beside them.
    mine = results["checkers"]["fives"]
    assert mine["valid"] is False and mine["fives"] > 0 and mine["checker"] == "fives"
    [found] = mine["found"]
    assert found["kind"] == "suspicious-five" and found["summary"] == SENTENCE and found["operations"]
    assert results["checkers"]["set"]["valid"] is True and results["valid"] is False
    assert "fives" in results["anomalies_found_at"]

    # The summary prints its sentence on its own line.
    line = next(x for x in out.getvalue().splitlines() if x.strip().startswith("fives"))
    assert "ANOMALY" in line and SENTENCE in line

    # The suite's JUnit message and pytest's explanation use the same sentences.
    assert f"fives: {SENTENCE}" in anomaly_sentences(results)

    # The report, read back from the folder with the checker no longer registered.
    assert "fives" not in CHECKERS.names()
    data = report_data(load_run(run))
    [a] = [a for a in data["anomalies"] if a["checker"] == "fives"]
    assert a["type"] == "suspicious-five" and a["sentence"] == SENTENCE and a["rows"]
    html = render_html(run)
    assert SENTENCE in html and f'id="{a["id"]}"' in html


def test_an_unknown_checker_in_a_spec_is_a_one_line_usage_error(tmp_path):
    from harness.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["run", "--nodes", "3", "--workload", "set", "--checker", "fivez", "--store", str(tmp_path)])
    assert code == 2
    assert "unknown checker 'fivez'" in err.getvalue() and len(err.getvalue().strip().splitlines()) == 1


def test_old_run_folders_without_found_still_give_their_anomalies():
    old = {"checkers": {"set": {"valid": False, "lost": [{"index": 3, "value": 7, "process": 1, "call": 1e9,
                                                           "ret": 2e9, "f": "add"}], "lost_count": 1,
                                "final_read": {"index": 9, "call": 3e9, "ret": 4e9}},
                        "mystery": {"valid": False}}}
    verdicts = {v.checker: v for v in read_verdicts(old)}
    [lost] = verdicts["set"].anomalies
    assert lost.kind == "lost" and lost.operations == (3, 9) and "1 acknowledged add lost" in lost.summary
    assert verdicts["mystery"].anomalies[0].summary == "mystery found an anomaly"
    # And a new verdict reads back as it was written.
    again = Verdict.from_dict("set", verdicts["set"].to_dict())
    assert again.anomalies == verdicts["set"].anomalies and again.valid is False
