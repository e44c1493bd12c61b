"""The run loop against an in-memory cluster: one complete, valid history; teardown in every case."""

from __future__ import annotations

import json
import os
import signal
import threading

from checkers.composite import check_history
from checkers.verdict import exit_code_for
from harness.memory import (
    NODES,
    MemoryCluster,
    quick_spec,
    run_in_memory,
)
from history.events import read_history


def test_a_run_records_clients_nemesis_and_observer_in_one_valid_history(tmp_path):
    cluster, workload, outcome = run_in_memory(tmp_path, quick_spec())
    assert outcome.infra_error is None, outcome.infra_error
    history = read_history(tmp_path / "history.jsonl")  # raises if the contract is broken
    processes = {e.process for e in history.events}
    assert "nemesis" in processes and "observer" in processes
    ops = history.client_operations()
    assert len(ops) > 200
    assert {o.status for o in ops} >= {"ok", "fail"}
    assert {e.f for e in history.nemesis_events()} >= {"heal"}
    assert outcome.recovered is True
    assert outcome.final_reads["ok"] == outcome.final_reads["ops"] > 0
    assert list(outcome.phases)[:6] == ["up", "warmup", "faults", "heal", "recovery", "final"]
    assert cluster.torn_down == 1 and cluster.logs_copied == 1
    result = check_history(tmp_path / "history.jsonl", workload)
    assert result["valid"] is True, json.dumps(result, default=str)[:2000]
    assert exit_code_for(result["valid"]) == 0


def test_an_info_op_moves_the_worker_to_a_new_process(tmp_path):
    # pause makes ops on the paused node time out: those are info, and the
    # validator rejects any process that acts after its info.
    spec = quick_spec(nemesis=("pause",), seed=3)
    _, _, outcome = run_in_memory(tmp_path, spec)
    history = read_history(tmp_path / "history.jsonl")
    infos = [o for o in history.client_operations() if o.status == "info"]
    assert infos, "the pause should have caused timeouts"
    assert outcome.processes > spec.concurrency


def test_the_set_workload_reports_the_adds_a_buggy_store_lost(tmp_path):
    spec = quick_spec(workload="set", nemesis=("kill",))
    _, workload, outcome = run_in_memory(tmp_path, spec, cluster=MemoryCluster(lose_writes=True))
    result = check_history(tmp_path / "history.jsonl", workload)
    s = result["checkers"]["set"]
    assert s["valid"] is False and s["lost"]
    assert all(e["value"] % 7 == 0 and e["f"] == "add" for e in s["lost"])
    assert exit_code_for(result["valid"]) == 1


def test_a_fault_that_did_nothing_is_an_infra_error_and_teardown_still_happens(tmp_path):
    cluster, _, outcome = run_in_memory(tmp_path, quick_spec(nemesis=("kill",)), nemesis_broken=True)
    assert outcome.infra_error and "did nothing" in outcome.infra_error
    assert cluster.torn_down == 1 and cluster.logs_copied == 1
    read_history(tmp_path / "history.jsonl")  # the partial history is still valid


def test_sigterm_mid_run_tears_down_and_leaves_a_checkable_history(tmp_path):
    spec = quick_spec(time_limit=30)
    timer = threading.Timer(0.8, lambda: os.kill(os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        cluster, workload, outcome = run_in_memory(tmp_path, spec, handle_signals=True)
    finally:
        timer.cancel()
    assert outcome.interrupted == "SIGTERM"
    assert cluster.torn_down == 1 and cluster.logs_copied == 1
    result = check_history(tmp_path / "history.jsonl", workload)
    assert result["valid"] in (True, "unknown")


def test_mixed_routing_pins_one_client_to_each_node_and_lets_the_rest_follow_the_leader(tmp_path):
    spec = quick_spec(nemesis=(), concurrency=6, time_limit=0.6)
    run_in_memory(tmp_path, spec)
    ops = read_history(tmp_path / "history.jsonl").client_operations()
    nodes_of: dict = {}
    for o in ops:
        nodes_of.setdefault(o.process, set()).add(o.node)
    assert all(nodes_of[p] == {NODES[p]} for p in range(3))  # pinned, though refused by followers
    followers = [o for o in ops if o.process in (3, 4, 5)]
    assert sum(o.node == "n1" for o in followers) > 0.8 * len(followers)  # n1 leads in the fake
