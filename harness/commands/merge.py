"""`splitbrain merge`: one table, one JUnit file and one index from the stores of a sharded suite."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from harness.errors import UsageError

NAME = "merge"
HELP = "merge the stores of a suite's shards: one table, one JUnit file, one index, one exit code"
DESCRIPTION = """\
Combine what the shards of a suite ran (`splitbrain suite FILE --shard K/N`,
one CI job each, each store uploaded as an artifact) into one store. Every run
of the suite is looked up in the shards' manifests, its run folder copied into
--store, and judged again from its results.json exactly as the suite judges
it. A run that no shard ran counts as a run that could not run.

examples:
  splitbrain merge suites/nightly.yaml shard1 shard2 shard3 --junit junit.xml
  splitbrain merge suites/smoke.yaml artifacts/*/store --store merged

exit codes: as `splitbrain suite`: 2 if any run could not run or was run by no
shard (or the inputs are invalid), else 1 if any run found an unexpected
anomaly or missed its deliberate bug, else 3 if any verdict was unknown, else 0.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="the suite YAML the shards ran")
    p.add_argument("stores", metavar="STORE", nargs="+", help="the shards' stores")
    p.add_argument("--store", default="store", metavar="DIR", help="where the merged store goes (default ./store)")
    p.add_argument("--junit", metavar="PATH", help="write the merged JUnit XML here")
    p.add_argument("--filter", metavar="NAME", help="as the shards were run with --filter NAME")
    p.add_argument("--seed-base", type=int, metavar="N", help="as the shards were run with --seed-base N")


def run(args: argparse.Namespace) -> int:
    from harness.shard import ShardError, merge, write_manifest
    from harness.suite import SuiteError, load_suite, summary_table, write_junit

    try:
        suite = load_suite(args.file, seed_base=args.seed_base)
    except SuiteError as e:
        raise UsageError(str(e)) from None
    stores = [Path(s) for s in args.stores]
    for s in stores:
        if not s.is_dir():
            raise UsageError(f"{s}: not a directory (a shard's store)")
    out = Path(args.store)
    try:
        outcome = merge(suite.runs(args.filter), suite.name, stores, out)
    except ShardError as e:
        raise UsageError(str(e)) from None
    print(summary_table(outcome))
    print(f"manifest         {write_manifest(out, suite.name, None, outcome)}")
    if args.junit:
        print(f"junit            {write_junit(args.junit, suite.name, outcome)}")
    try:
        from reports.index import write_index

        print(f"index            {write_index(out)}")
    except Exception as e:  # the verdicts stand without the index
        print(f"splitbrain merge: index of {out} not written: {type(e).__name__}: {e}", file=sys.stderr)
    code = outcome.exit_code
    print(f"exit             {code} ({time.strftime('%H:%M:%S')})")
    return code
