"""A small real matrix: 2 bugs x 1 mix x 2 seeds on 3-node raftkv clusters, plus the correct store under the
same mix and seeds (6 runs of 15 s of faults, a few minutes). stale-read shows with a client pinned to a
lagging follower even before the partitions, so both its seeds must catch it; the correct store must be
valid in both; ack-before-replicate's row is a measurement at this length, recorded and not judged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.docker


def test_a_small_matrix_catches_stale_read_and_finds_the_correct_store_valid(tmp_path):
    out, store = tmp_path / "matrix", tmp_path / "store"
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "matrix", "--bug", "stale-read", "--bug", "ack-before-replicate",
         "--mix", "kp=kill,partition", "--seeds", "2", "--time-limit", "15", "--nodes", "3",
         "--store", str(store), "--out", str(out), "--retry-errors", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    assert "[6/6]" in proc.stderr  # progress, one line per run
    t = json.loads((out / "matrix.json").read_text())
    rows = {r["bug"]: r for r in t["rows"]}
    assert set(rows) == {"stale-read", "ack-before-replicate"}
    assert all(r["seeds_run"] == 2 and r["errors"] == 0 for r in rows.values())
    sr = rows["stale-read"]
    assert sr["caught"] == 2 and sr["timed"] == 2 and sr["worst_s"] >= sr["median_s"]
    [control] = t["controls"]
    assert (control["seeds_run"], control["false_positives"], control["valid"]) == (2, 0, 2)
    assert not t["harness_failure"]
    assert "| stale-read | kp | 2/2 |" in (out / "matrix.md").read_text()
    assert "Detection matrices" in (store / "index.html").read_text()
    # Run again into the same folder: everything is there, so nothing runs.
    again = subprocess.run(
        [sys.executable, "-m", "harness.cli", "matrix", "--bug", "stale-read", "--bug", "ack-before-replicate",
         "--mix", "kp=kill,partition", "--seeds", "2", "--time-limit", "15", "--nodes", "3",
         "--store", str(store), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert again.returncode == 0 and "6 of 6 runs already in" in again.stderr, again.stderr[-2000:]
