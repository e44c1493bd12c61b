"""vote-crash in Docker: forgotten votes elect two leaders in one term and the checker says so; kept votes never do.

Marked docker (scripts/test runs it). Each run is cleaned up by the `store`
fixture of test_run_docker, also when the test fails.
"""

from __future__ import annotations

import json

import pytest
from test_run_docker import _splitbrain, store  # noqa: F401  (store is a fixture)

from history.events import read_history

pytestmark = pytest.mark.docker


def vote_crash_run(store, seed: int, bugs: tuple[str, ...], seconds: int):  # noqa: F811
    args = ["--target", "raftkv", "--nodes", "3", "--nemesis", "vote-crash", "--nemesis-interval", "4",
            "--time-limit", str(seconds), "--warmup", "2", "--seed", str(seed), "--store", str(store), "--quiet"]
    for b in bugs:
        args += ["--bug", b]
    proc = _splitbrain(*args)
    out, err = proc.communicate(timeout=300)
    run = (store / "latest").resolve()
    results = json.loads((run / "results.json").read_text())
    attempts = [e.value or {} for e in read_history(run / "history.jsonl").nemesis_events()
                if e.f == "start-vote-crash" and e.type == "info"]
    logs = "".join(p.read_text() for p in (run / "logs").iterdir())
    return proc.returncode, out + err, results, attempts, logs


def test_forgotten_votes_give_two_leaders_in_one_term_and_the_checker_reports_it(store):  # noqa: F811
    code, output, results, attempts, logs = vote_crash_run(store, 2, ("no-persist-vote",), 40)
    assert "failpoint crash-after-vote: granted my vote" in logs
    split = [a for a in attempts if a.get("outcome") == "two-leaders-one-term"]
    # The old leader wins its race about 3 times in 4: five attempts all losing it is a 1-in-1000 event.
    assert split, attempts
    found = results["checkers"]["split-brain"]["anomalies"]
    terms = {a["term"] for a in found if a["type"] == "two-leaders-one-term"}
    # Every split the nemesis saw, the checker found from the observer's samples alone.
    assert {a["term"] for a in split} <= terms, (split, found)
    assert code == 1 and results["valid"] is False, output


def test_remembered_votes_never_give_two_leaders_in_one_term(store):  # noqa: F811
    code, output, results, attempts, logs = vote_crash_run(store, 2, (), 30)
    assert any(a.get("crashed") for a in attempts), attempts  # the fault did happen
    assert not [a for a in attempts if a.get("outcome") == "two-leaders-one-term"], attempts
    assert results["checkers"]["split-brain"]["valid"] is True
    assert code == 0, output
