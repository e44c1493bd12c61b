"""CI runs the smoke suite: the correct raftkv is valid under each fault family, and both deliberate bugs
it lists are caught (they show as passes in JUnit). A few minutes of Docker. A run that could not run at all
(the loaded CI machine once refused a partition's verification) is run once more; an anomaly never is."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.docker


def test_the_smoke_suite_passes_and_catches_its_deliberate_bugs(tmp_path):
    junit = tmp_path / "smoke.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "suite", str(REPO / "suites" / "smoke.yaml"),
         "--junit", str(junit), "--store", str(tmp_path / "store"), "--retry-errors", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("0", "0", "0")
    cases = {c.get("name").split("[")[0]: c for c in suite.iter("testcase")}
    for name in ("bug-stale-read", "bug-ack-before-replicate"):
        props = {p.get("name"): p.get("value") for p in cases[name].iter("property")}
        assert (props["expect"], props["verdict"]) == ("anomaly", "anomaly"), name  # caught, so a pass
        assert cases[name].find("failure") is None and "caught" in cases[name].find("system-out").text
    correct = [c for n, c in cases.items() if n.startswith("correct-")]
    assert len(correct) >= 5 and all(c.find("failure") is None for c in correct)
    assert (tmp_path / "store" / "index.html").is_file()
