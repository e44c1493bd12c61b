"""Two runs on one Docker host at once, and a `splitbrain clean` between them: both end with verdicts, and
neither loses a container or its network to the other or to the clean (which spares live runs)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.docker


def _run(store, seed: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", "--nodes", "3", "--nemesis", "partition,kill",
         "--time-limit", "20", "--nemesis-interval", "3", "--seed", str(seed), "--store", str(store), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_parallel_runs_and_a_clean_between_them_both_end_with_verdicts(tmp_path):
    from test_cluster_docker_sigkill import owned_by

    a, b = _run(tmp_path / "a", 1), _run(tmp_path / "b", 2)
    try:
        deadline = time.monotonic() + 120
        while (owned_by(a.pid)[0] < 3 or owned_by(b.pid)[0] < 3) and time.monotonic() < deadline:
            assert a.poll() is None and b.poll() is None, "a run ended before both were up"
            time.sleep(0.5)
        assert owned_by(a.pid) == (3, 1) and owned_by(b.pid) == (3, 1), "both runs brought their nodes up"
        time.sleep(4)  # both in their fault phase
        out = subprocess.run([sys.executable, "-m", "harness.cli", "clean"], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert owned_by(a.pid) == (3, 1) and owned_by(b.pid) == (3, 1), "clean spared both live runs"
        codes = [p.wait(timeout=180) for p in (a, b)]
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=60)
    for store, code, p in ((tmp_path / "a", codes[0], a), (tmp_path / "b", codes[1], b)):
        results = [json.loads(f.read_text()) for f in store.rglob("results.json")]
        assert code == 0 and len(results) == 1, p.stderr.read()[-2000:]
        assert results[0]["valid"] is True and results[0]["status"] == "complete"
    assert owned_by(a.pid) == (0, 0) and owned_by(b.pid) == (0, 0), "each tore its own down"
