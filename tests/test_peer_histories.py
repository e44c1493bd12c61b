"""The checker agrees with every verdict Porcupine's own tests expect on its recorded histories.

The data is a copy of Porcupine's test histories kept in tests/data/porcupine
(MIT, see its README for where each file came from). If it is missing this
test fails: the agreement is the point of it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from checkers.linearizability import check
from checkers.models import get_model
from history.formats.porcupine import read_porcupine_etcd, read_porcupine_kv

PEER_DIR = Path(__file__).resolve().parent / "data" / "porcupine"
MANIFEST = PEER_DIR / "manifest.tsv"

# Generous: the slowest file takes well under a second; a regression that
# makes the search run out shows up as "unknown", which fails the test.
TIME_LIMIT_S = 60.0


def _manifest_rows() -> list[dict]:
    if not MANIFEST.is_file():
        # Collected at import time on purpose: a missing data set must fail
        # loudly, never skip quietly.
        return [{"file": "<missing>", "format": "missing", "expected_verdict": "", "ops": "0"}]
    with MANIFEST.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


ROWS = _manifest_rows()
CHECKED = [r for r in ROWS if r["expected_verdict"] in ("linearizable", "not-linearizable")]


def test_the_peer_data_is_there_with_108_verdicts_to_agree_with():
    assert MANIFEST.is_file(), f"peer histories missing: expected {MANIFEST}"
    assert len(CHECKED) == 108
    unchecked = [r["file"] for r in ROWS if r not in CHECKED]
    # etcd_095.log is empty: its cluster never started, and Porcupine has no test for it.
    assert unchecked == ["jepsen/etcd_095.log"]
    assert (PEER_DIR / "jepsen" / "etcd_095.log").stat().st_size == 0


def _read(row: dict):
    path = PEER_DIR / row["file"]
    if row["file"].startswith("jepsen/"):
        return read_porcupine_etcd(path), get_model("etcd")
    return read_porcupine_kv(path), get_model("string-kv")


@pytest.mark.parametrize("row", CHECKED, ids=[r["file"] for r in CHECKED])
def test_verdict_agrees_with_porcupine(row):
    ops, model = _read(row)
    assert len(ops) == int(row["ops"])
    result = check(ops, model, time_limit=TIME_LIMIT_S)
    expected = row["expected_verdict"] == "linearizable"
    assert result["valid"] is expected, result["keys"]
    if not expected:
        evidence = result["evidence"]
        assert evidence["blocked"] or evidence["legal_but_dead_end"]
        assert evidence["linearized_prefix"] is not None


def test_etcd_095_is_empty_and_checks_as_trivially_linearizable():
    ops = read_porcupine_etcd(PEER_DIR / "jepsen" / "etcd_095.log")
    assert ops == []
    assert check(ops, get_model("etcd"))["valid"] is True
