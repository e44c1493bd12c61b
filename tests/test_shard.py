"""Sharded suites (harness.shard): every run in exactly one shard, balanced, independent of file order; and a
merge of the shards' stores that judges as the unsharded suite does. The suite runs here are whole
`splitbrain run`s against the in-memory cluster (harness.memory: a fake for tests of the harness itself)."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.commands.run import execute
from harness.memory import MemoryCluster, memory_parts
from harness.shard import ShardError, expected_s, merge, parse_shard, shards, write_manifest
from harness.spec import TestSpec
from harness.suite import RunResult, SuiteRun, SuiteTest, load_suite, run_suite, suite_exit_code


def _runs(lengths):
    tests = [SuiteTest(f"t{i}", TestSpec(time_limit=float(s)), (i, i + 100)) for i, s in enumerate(lengths)]
    return [SuiteRun(t, seed) for t in tests for seed in t.seeds]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 600), min_size=1, max_size=40), st.integers(1, 7), st.randoms())
def test_every_run_is_in_exactly_one_shard_whatever_the_order_and_the_shards_are_balanced(lengths, n, rnd):
    runs = _runs(lengths)
    split = shards(runs, n)
    names = [r.name for s in split for r in s]
    assert sorted(names) == sorted(r.name for r in runs) and len(set(names)) == len(names)
    shuffled = runs[:]
    rnd.shuffle(shuffled)
    assert [{r.name for r in s} for s in shards(shuffled, n)] == [{r.name for r in s} for s in split]
    loads = [sum(expected_s(r) for r in s) for s in split]
    assert max(loads) - min(loads) <= max(expected_s(r) for r in runs)


def test_shard_values_are_checked():
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "3", "a/b", "1/0"):
        with pytest.raises(ShardError):
            parse_shard(bad)


SUITE = """\
name: sharding
defaults: {target: fake, nodes: 3, workload: set, nemesis: kill, time-limit: 0.6, concurrency: 4, rate: 300,
           nemesis-interval: 0.2, warmup: 0.1, recovery-limit: 3, op-timeout: 0.2}
tests:
  - {name: correct-a, seed-count: 2}
  - {name: correct-b, seeds: [5, 6]}
  - {name: loses-writes, seed-count: 2, bugs: [lose-writes], expect: anomaly}
  - {name: misses-it, seeds: [9], bugs: [lose-writes], expect: valid}
"""


def _memory_runner(store: Path):
    def run(r: SuiteRun) -> RunResult:
        spec = dataclasses.replace(r.spec(str(store)), bugs=())  # the fake cluster has no bugs to start with
        code = execute(spec.resolve(), None, quiet=True, out=io.StringIO(),
                       parts=memory_parts(MemoryCluster(lose_writes="lose-writes" in r.test.spec.bugs)))
        folder = (store / "latest").resolve()
        return RunResult(code, folder, json.loads((folder / "results.json").read_text()), 1.0)
    return run


def _table(outcome):
    return [(j.run.name, j.outcome, j.verdict) for j in outcome.judged]


def test_merged_shards_judge_every_run_as_the_unsharded_suite(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE)
    suite = load_suite(path, target_check=False, seed_base=11)
    runs = suite.runs()
    whole = run_suite(runs, _memory_runner(tmp_path / "whole"))
    assert {j.outcome for j in whole.judged} == {"pass", "failure"}  # misses-it is a failure: it loses writes
    stores = []
    for k, part in enumerate(shards(runs, 3), start=1):
        store = tmp_path / f"shard{k}"
        out = run_suite(part, _memory_runner(store))
        write_manifest(store, suite.name, (k, 3), out)
        stores.append(store)
    merged = merge(runs, suite.name, stores, tmp_path / "merged")
    assert _table(merged) == _table(whole)
    assert merged.exit_code == whole.exit_code == suite_exit_code(whole.judged) == 1
    assert all(j.result.run_dir.is_relative_to(tmp_path / "merged") and (j.result.run_dir / "results.json").exists()
               for j in merged.judged)
    # The same seeds come from the same base in another process; a missing shard is runs that could not run.
    assert [r.name for r in load_suite(path, target_check=False, seed_base=11).runs()] == [r.name for r in runs]
    partial = merge(runs, suite.name, stores[:2], tmp_path / "partial")
    missing = [j for j in partial.judged if j.outcome == "error"]
    assert missing and len(missing) == len(shards(runs, 3)[2]) and partial.exit_code == 2
    with pytest.raises(ShardError, match="also run by"):
        merge(runs, suite.name, [stores[0], stores[0]], tmp_path / "twice")


def test_the_commands_refuse_fresh_seeds_and_a_store_without_manifest(tmp_path, capsys):
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.replace("target: fake", "target: raftkv").replace("lose-writes", "stale-read"))
    assert main(["suite", str(path), "--shard", "1/2", "--list"]) == 2
    assert "--seed-base" in capsys.readouterr().err
    assert main(["suite", str(path), "--shard", "1/2", "--seed-base", "3", "--list"]) == 0
    listed = capsys.readouterr().out
    assert main(["suite", str(path), "--shard", "2/2", "--seed-base", "3", "--list"]) == 0
    other = capsys.readouterr().out
    names = [ln.split()[0] for ln in (listed + other).splitlines() if "expect" in ln]
    assert len(names) == len(set(names)) == 7
    (tmp_path / "empty").mkdir()
    assert main(["merge", str(path), str(tmp_path / "empty"), "--store", str(tmp_path / "m")]) == 2
    assert "no manifest" in capsys.readouterr().err
