"""`splitbrain report`: (re)render a run folder's report.html, or a store's index.html."""

from __future__ import annotations

import argparse
import os

NAME = "report"
HELP = "render a run folder's report.html (or --index STORE: the store's index.html)"
DESCRIPTION = """\
Render the HTML report of a run folder: RUN_DIR/report.html, one
self-contained page (no network, opens from file://) with the verdict, a
sentence per anomaly, the timeline of faults, leaders and operations, the
checkers' evidence, latency and throughput, and node log lines around each
anomaly. `splitbrain run` writes it at the end of every run; this rewrites it
(after an upgrade, or for a run checked again). The store's index.html is
refreshed too.

With --index STORE: write STORE/index.html, every run in the store with its
verdict, anomaly counts and duration, and each test's recent verdicts.

examples:
  splitbrain report store/latest
  splitbrain report --index store

exit codes: 0 written, 2 not a run folder (or not a store).
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="a run folder (store/<test>/<timestamp>, or store/latest)")
    p.add_argument("--index", metavar="STORE", help="write STORE/index.html listing every run instead")


def run(args: argparse.Namespace) -> int:
    from harness.errors import UsageError
    from reports.data import ReportError

    if bool(args.run_dir) == bool(args.index):
        raise UsageError("give either RUN_DIR or --index STORE")
    try:
        if args.index:
            from reports.index import write_index

            print(write_index(args.index))
        else:
            from reports.render import render_run

            print(render_run(args.run_dir))
    except ReportError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        # An unwritable run folder or store (report.html is written beside the history).
        raise UsageError(f"{e.filename or args.run_dir or args.index}: cannot write: {e.strerror or e}") from None
    except (TypeError, AttributeError, ValueError, KeyError, IndexError) as e:
        # The renderer reads results.json as the harness writes it; a file of
        # another shape (edited, truncated into valid JSON, another version) is
        # the input's fault, said in one line.
        where = args.index or os.path.join(args.run_dir, "results.json")
        raise UsageError(f"{where}: not the shape splitbrain writes ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:160]})") from None
    return 0
