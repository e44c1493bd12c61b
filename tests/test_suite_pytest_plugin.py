"""The pytest plugin without Docker: the chaos marker becomes the test's spec, a result explains itself
(anomaly sentence, report path, schedule), and a failing chaos test gets a report section."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.pytest_plugin import Chaos, ChaosResult, pytest_runtest_makereport
from nemesis.schedule import ScheduledOp

SCHEDULE = [ScheduledOp(0.0, "kill", "kill", {"nodes": ["leader"]}), ScheduledOp(1.5, "kill", "start", {"nodes": ["leader"]})]


@pytest.mark.chaos(nodes=5, bugs=["stale-read"], time_limit=12, options={"lease_reads": True})
def test_the_chaos_marker_is_the_tests_spec(chaos_spec, chaos):
    assert (chaos_spec.nodes, chaos_spec.bugs, chaos_spec.time_limit, chaos_spec.options) == (
        5, ("stale-read",), 12.0, {"lease_reads": True})
    assert chaos_spec.test == "test_the_chaos_marker_is_the_tests_spec"
    assert chaos.nodes == ["n1", "n2", "n3", "n4", "n5"]


def test_without_a_marker_the_spec_is_small_and_quick(chaos_spec):
    assert (chaos_spec.target, chaos_spec.nodes, chaos_spec.bugs) == ("raftkv", 3, ())


def anomalous(tmp_path: Path) -> ChaosResult:
    results = {"valid": False, "seed": 9, "checkers": {"split-brain": {"valid": False, "anomalies": [
        {"type": "two-leaders-one-term", "summary": "n1 and n3 both led term 6"}]}}}
    return ChaosResult(results, tmp_path / "run", SCHEDULE)


def test_a_failing_result_explains_itself_with_sentence_report_and_schedule(tmp_path):
    result = anomalous(tmp_path)
    with pytest.raises(AssertionError) as e:
        result.assert_valid()
    text = str(e.value)
    assert "n1 and n3 both led term 6" in text and str(tmp_path / "run" / "report.html") in text
    assert "kill {'nodes': ['leader']}" in text and "seed 9" in text
    result.assert_anomaly()


def test_a_failing_chaos_test_gets_a_splitbrain_section_and_the_report_path(tmp_path):
    class Node:
        user_properties: list = []

    class Report:
        when, failed, sections = "call", True, []

    class Outcome:
        def get_result(self):
            return Report

    item = Node()
    item._splitbrain_chaos = handle = Chaos(None, item)
    handle.results.append(anomalous(tmp_path))
    hook = pytest_runtest_makereport.__wrapped__ if hasattr(pytest_runtest_makereport, "__wrapped__") else \
        pytest_runtest_makereport
    gen = hook(item, None)
    next(gen)
    with pytest.raises(StopIteration):
        gen.send(Outcome())
    (title, body), = Report.sections
    assert title == "splitbrain chaos" and "report.html" in body
