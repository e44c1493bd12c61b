"""The Redis recipes end to end in Docker: redis-py's Lock through Sentinel, and Redlock on standalone servers.

Marked docker. One short run each (14 s, pauses of the candidates), cleaned by its own run id. What they assert
holds whatever the verdict: the run completes, every candidate's claims reach the history, the fencing tokens
(ours: an INCR checked against the lock key, a counter raised on a majority) grow with every acquisition in
the order the candidates made them, and every write the resource accepted carries a token its candidate held.
"""

from __future__ import annotations

import pytest
from test_election_docker import _claims, _run
from test_run_docker import store  # noqa: F401  (a fixture: its runs are cleaned)

pytestmark = pytest.mark.docker


def _tokens_grow_with_acquisitions(history):
    assert {e.node for e in _claims(history, "start")} == {"c1", "c2", "c3"}
    acquired = sorted((e.value["at"], e.value["token"], e.node) for e in _claims(history, "acquire") if e.type == "ok")
    assert len(acquired) >= 2
    tokens = [t for _, t, _ in acquired]
    assert all(isinstance(t, int) for t in tokens)
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)
    held = {(n, t) for _, t, n in acquired}
    work = [e for e in history.events if e.process == "resource" and e.type == "ok"]
    assert work and all((e.node, e.value["token"]) in held for e in work)
    # Every holder's belief ended in a claim the recipe made, or the run's end.
    ends = {e.value.get("why") for e in _claims(history) if e.f in ("release", "lost") and e.type == "ok"}
    assert ends and ends <= {"done", "expired", "not-owned"}


def test_a_redis_lock_run_completes_and_its_claims_show_up(store):  # noqa: F811
    run, results, history = _run(store, "--nemesis", "pause", "--seed", "3", recipe="redis-lock")
    me = results["checkers"]["mutual-exclusion"]
    assert me["valid"] in (True, False) and me["intervals"]
    _tokens_grow_with_acquisitions(history)


def test_a_redlock_run_on_standalone_servers_completes_and_its_claims_show_up(store):  # noqa: F811
    run, results, history = _run(store, "--nemesis", "pause", "--seed", "3", "--fencing", "on", recipe="redlock")
    me = results["checkers"]["mutual-exclusion"]
    assert me["valid"] in (True, False) and me["fencing"]["fenced"] is True
    _tokens_grow_with_acquisitions(history)
    # Independent primaries: every server leads itself, with no term for the split-brain checker to compare.
    samples = [e for e in history.events if e.process == "observer" and isinstance(e.value, dict)]
    assert {e.node for e in samples if e.value.get("role") == "leader"} == {"n1", "n2", "n3"}
    assert all(e.value.get("term") is None for e in samples)
