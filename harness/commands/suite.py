"""`splitbrain suite`: run a YAML suite of chaos tests, judge each run against what it expects, write JUnit."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

NAME = "suite"
HELP = "run a YAML suite of chaos tests; JUnit XML, a summary table and the run index"
DESCRIPTION = """\
Run every test of a suite file, each seed as its own `splitbrain run` (its own
cluster, network and run folder), judge each run against what the test
expects, print a summary table, write JUnit XML (one test case per run) and
render the store's index.html.

A suite file:
  name: smoke
  defaults: {nodes: 3, time-limit: 20, concurrency: 6}
  tests:
    - name: partition
      nemesis: partition
      seeds: [1, 2]                 # or seed-count: 3 (fresh seeds, recorded)
    - name: stale-read
      nemesis: partition
      bugs: [stale-read]
      expect: anomaly               # valid (default) | anomaly | any

expect: anomaly marks a deliberate-bug test: catching the bug is a pass, and a
valid history is a failure (the harness lost its power to find that bug).
expect: any records the verdict without judging it.

examples:
  splitbrain suite suites/smoke.yaml --junit junit.xml
  splitbrain suite suites/nightly.yaml --parallel 2 --junit out/junit.xml --store out/store
  splitbrain suite suites/smoke.yaml --filter stale-read --fail-fast
  splitbrain suite suites/nightly.yaml --shard 2/3 --store shard2     # one CI job of three
  splitbrain merge suites/nightly.yaml shard1 shard2 shard3 --junit junit.xml

Every suite writes a manifest of its runs into its store (suite-NAME.json, or
suite-NAME-shard-K-of-N.json), which `splitbrain merge` reads.

exit codes: 2 if any run could not run (or the suite file is invalid), else 1
if any run found an unexpected anomaly or missed its deliberate bug, else 3 if
any verdict was unknown, else 0.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="suite YAML")
    p.add_argument("--junit", metavar="PATH", help="write JUnit XML here")
    p.add_argument("--parallel", type=int, default=1, metavar="N",
                   help="runs at once (default 1; each is a whole cluster: mind the cores)")
    p.add_argument("--fail-fast", action="store_true", help="start no new run after one fails or cannot run")
    p.add_argument("--filter", metavar="NAME", help="only tests whose name contains NAME (or matches it as a glob)")
    p.add_argument("--store", metavar="DIR", help="where run folders go (overrides the suite's store)")
    p.add_argument("--retry-errors", type=int, default=0, metavar="N",
                   help="run a test again (up to N times) when it could not run at all: an infrastructure error, "
                        "never an anomaly (default 0)")
    p.add_argument("--shard", metavar="K/N",
                   help="run only shard K of N: every run is in exactly one shard, balanced by expected time and "
                        "independent of the order of the file; `splitbrain merge` combines the shards' stores")
    p.add_argument("--seed-base", type=int, metavar="N",
                   help="draw seed-count seeds from N and each test's name instead of fresh ones; every shard "
                        "of one CI run (and its merge) needs the same N, e.g. the CI run's number")
    p.add_argument("--list", action="store_true", help="validate and list the runs, run nothing")


def run(args: argparse.Namespace) -> int:
    from harness.errors import UsageError
    from harness.suite import (
        SuiteError,
        load_suite,
        run_suite,
        stopping_on_signals,
        subprocess_runner,
        summary_table,
        write_junit,
    )

    if args.parallel < 1:
        raise UsageError(f"--parallel must be at least 1, got {args.parallel}")
    if args.retry_errors < 0:
        raise UsageError(f"--retry-errors must not be negative, got {args.retry_errors}")
    try:
        suite = load_suite(args.file, seed_base=args.seed_base)
    except SuiteError as e:
        raise UsageError(str(e)) from None
    runs = suite.runs(args.filter)
    if not runs:
        raise UsageError(f"{args.file}: no test matches --filter {args.filter!r}; tests: "
                         f"{', '.join(t.name for t in suite.tests)}")
    shard = None
    if args.shard is not None:
        from harness.shard import ShardError, expected_s, parse_shard, shard_runs

        try:
            shard = parse_shard(args.shard)
        except ShardError as e:
            raise UsageError(str(e)) from None
        fresh = [t.name for t in suite.tests if t.fresh]
        if fresh:
            raise UsageError(f"--shard: {fresh[0]} draws fresh seeds, so each shard would run other ones; give "
                             "--seed-base N (the same N to every shard and to merge)")
        runs = shard_runs(runs, *shard)
        print(f"splitbrain suite: shard {shard[0]}/{shard[1]}: {len(runs)} runs, about "
              f"{sum(expected_s(r) for r in runs) / 60:.0f} min", flush=True)
    if args.list:
        for r in runs:
            print(f"{r.name}  expect {r.test.expect}")
        return 0
    stores = {args.store or r.test.spec.store for r in runs}
    print(f"splitbrain suite: {suite.name}: {len(runs)} runs of {len({r.test.name for r in runs})} tests, "
          f"{args.parallel} at a time", flush=True)

    def log(line: str) -> None:
        print(line, flush=True)

    def done(j) -> None:
        log(f"splitbrain suite: {j.outcome.upper() if j.outcome != 'pass' else 'pass'} {j.run.name} "
            f"({j.result.duration_s:.0f}s): {j.message}")

    with tempfile.TemporaryDirectory(prefix="splitbrain-suite-") as tmp:
        runner = subprocess_runner(args.store, Path(tmp), log)
        with stopping_on_signals(runner, log) as interrupted:
            outcome = run_suite(runs, runner, parallel=args.parallel, fail_fast=args.fail_fast, on_done=done,
                                retry_errors=args.retry_errors)
    print(summary_table(outcome))
    if runs:
        from harness.shard import write_manifest

        store = Path(args.store or runs[0].test.spec.store)
        print(f"manifest         {write_manifest(store, suite.name, shard, outcome)}")
    if args.junit:
        print(f"junit            {write_junit(args.junit, suite.name, outcome)}")
    for store in sorted(stores):
        try:
            from reports.index import write_index

            print(f"index            {write_index(store)}")
        except Exception as e:  # the verdicts stand without the index
            print(f"splitbrain suite: index of {store} not written: {type(e).__name__}: {e}", file=sys.stderr)
    code = 2 if interrupted else outcome.exit_code
    if interrupted:
        print(f"splitbrain suite: interrupted ({interrupted[0]}): the table holds what ran", file=sys.stderr)
    print(f"exit             {code} ({time.strftime('%H:%M:%S')})")
    return code
