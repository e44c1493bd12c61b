"""`splitbrain matrix`: how well the harness finds each deliberate bug under each fault mix, and proof that
the correct store stays valid under the same seeds and mixes."""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

NAME = "matrix"
HELP = "detection matrix: per (bug, fault mix), N seeds: detection rate, time to detect, false positives"
DESCRIPTION = """\
Measure the harness's power: for each (deliberate bug, fault mix) run N seeds
and count how many caught the bug, how long after the first fault the first
anomalous operation came (median and worst, over the seeds that caught it),
and run the correct store (no bug) under the same seeds and mixes. An anomaly
on the correct store is a false positive: a failure of the harness, not a
finding, and the matrix exits 1 and says so in its table.

A matrix file:
  name: bugs
  defaults: {nodes: 5, time-limit: 30, nemesis-interval: 3}   # any run setting
  seeds: 3                          # seeds 1..3 (or a list: [1, 5, 9])
  mixes:
    partition: partition
    kill-partition: {nemesis: [kill, partition], nemesis-interval: 2}
  bugs:                             # bug -> the mixes to try it under (null: all)
    stale-read: [partition]
    ack-before-replicate: null
    lease-no-checkquorum: {mixes: [partition], options: {lease_reads: true}}

Or on the command line: every --bug under every --mix. Each (row, seed) is
one `splitbrain run --spec` (as `splitbrain suite` runs them). Progress goes to
stderr; the table to stdout, and as matrix.json and matrix.md to the output
folder (STORE/_matrix/NAME-TIME unless --out), which the run index
(STORE/index.html) lists. Run the same matrix again with --out pointing at
that folder to resume: runs already finished there are not run again
(runs that could not run are). Ctrl-C stops the runs under way (each tears
its cluster down), starts no more, and writes the table of what finished.

examples:
  splitbrain matrix suites/matrix.yaml --seeds 3 --time-limit 30
  splitbrain matrix suites/matrix.yaml --bug no-fsync --out /tmp/m1        # one bug's rows; resumable
  splitbrain matrix --bug stale-read --bug ack-before-replicate --mix partition \\
      --mix kp=kill,partition --seeds 1-5 --time-limit 20 --nodes 3
  splitbrain matrix suites/matrix.yaml --list                                # validate, run nothing

exit codes: 1 if the correct store had an anomaly in any run (a harness
failure), else 2 if a run could not run, was interrupted or the file is
invalid, else 0. A bug the matrix does not catch is a measurement: its rate
says so, the exit code does not.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", nargs="?", help="matrix YAML (or give --bug and --mix)")
    p.add_argument("--bug", action="append", default=[], metavar="NAME",
                   help="a deliberate bug; with FILE, keep only its rows (repeatable)")
    p.add_argument("--mix", action="append", default=[], metavar="[NAME=]FAULTS",
                   help="a fault mix, e.g. kp=kill,partition; with FILE, the name of one of its mixes (repeatable)")
    p.add_argument("--seeds", metavar="N|LO-HI|A,B",
                   help="seeds for every row and control: 3 means 1-3 (default: the file's, else 1-3)")
    p.add_argument("--time-limit", type=float, metavar="S", help="seconds of faults per run (overrides the file)")
    p.add_argument("--nodes", type=int, metavar="N", help="cluster size (overrides the file)")
    p.add_argument("--store", metavar="DIR", help="where run folders go (overrides the file)")
    p.add_argument("--out", metavar="DIR", help="the matrix's folder; an existing one is resumed")
    p.add_argument("--parallel", type=int, default=1, metavar="N",
                   help="runs at once (default 1; each is a whole cluster: mind the cores)")
    p.add_argument("--retry-errors", type=int, default=0, metavar="N",
                   help="run again (up to N times) a run that could not run at all (default 0)")
    p.add_argument("--list", action="store_true", help="validate and list the rows and controls, run nothing")


def load(args: argparse.Namespace):
    from harness.errors import UsageError
    from harness.matrix import load_matrix, matrix_from_flags, parse_seeds
    from harness.suite import SuiteError

    seeds = None
    if args.seeds is not None:
        try:
            seeds = parse_seeds(args.seeds)
        except ValueError as e:
            raise UsageError(f"--seeds: {e}") from None
    overrides = {k.replace("_", "-"): v for k, v in (("time_limit", args.time_limit), ("nodes", args.nodes),
                                                      ("store", args.store)) if v is not None}
    try:
        if args.file:
            return load_matrix(args.file, seeds, overrides, tuple(args.bug), tuple(args.mix))
        if not args.bug or not args.mix:
            raise UsageError("give a matrix FILE, or at least one --bug and one --mix")
        return matrix_from_flags(tuple(args.bug), tuple(args.mix), seeds or (1, 2, 3),
                                 {"target": "raftkv", **overrides})
    except SuiteError as e:
        raise UsageError(str(e)) from None


def run(args: argparse.Namespace) -> int:
    from harness.errors import UsageError
    from harness.matrix import MATRIX_DIR, exit_code, run_matrix, table, text_table, write_table
    from harness.suite import stopping_on_signals, subprocess_runner

    if args.parallel < 1:
        raise UsageError(f"--parallel must be at least 1, got {args.parallel}")
    if args.retry_errors < 0:
        raise UsageError(f"--retry-errors must not be negative, got {args.retry_errors}")
    matrix = load(args)
    runs = matrix.runs()
    if args.list:
        for r in matrix.rows:
            print(f"{r.label:40}  {r.test.name}  control {r.control}")
        for r in matrix.controls:
            print(f"{r.label:40}  {r.test.name}")
        print(f"{len(runs)} runs: {len(matrix.rows)} rows and {len(matrix.controls)} controls x "
              f"{len(matrix.seeds)} seeds {list(matrix.seeds)}")
        return 0
    store = Path(args.store or matrix.rows[0].test.spec.store)
    out = Path(args.out) if args.out else store / MATRIX_DIR / f"{matrix.name}-{time.strftime('%Y%m%dT%H%M%S')}"
    command = "splitbrain " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else None

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    log(f"splitbrain matrix: {matrix.name}: {len(matrix.rows)} rows and {len(matrix.controls)} controls x "
        f"{len(matrix.seeds)} seeds = {len(runs)} runs, {args.parallel} at a time; folder {out}")
    with tempfile.TemporaryDirectory(prefix="splitbrain-matrix-") as tmp:
        runner = subprocess_runner(args.store, Path(tmp), None)
        with stopping_on_signals(runner, log, "matrix") as interrupted:
            cells = run_matrix(matrix, runner, out, parallel=args.parallel, retry_errors=args.retry_errors, log=log)
    t = table(matrix, cells)
    js, md = write_table(out, t, command)
    listed = store / MATRIX_DIR / out.name
    if listed.resolve() != out.resolve():
        write_table(listed, t, command)  # the index lists the store's matrices; --out put this one elsewhere
    print(text_table(t))
    print(f"table            {md}")
    print(f"data             {js}")
    try:
        from reports.index import write_index

        print(f"index            {write_index(store)}")
    except Exception as e:  # the table stands without the index
        log(f"splitbrain matrix: index of {store} not written: {type(e).__name__}: {e}")
    code = exit_code(t, bool(interrupted))
    if interrupted:
        log(f"splitbrain matrix: interrupted ({interrupted[0]}): the table holds what finished; "
            f"resume with --out {out}")
    print(f"exit             {code}")
    return code
