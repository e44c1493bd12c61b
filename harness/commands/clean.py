"""`splitbrain clean`: remove the containers and networks a killed harness left behind, found by label."""

from __future__ import annotations

import argparse
import sys

NAME = "clean"
HELP = "remove leftover containers and networks of splitbrain runs (by label)"
DESCRIPTION = """\
Every container and network a run creates carries the label
splitbrain.run=<run id>. A harness that ends normally, by an exception, by
Ctrl-C or by SIGTERM removes its own; one killed with SIGKILL cannot, and
then the run's reaper (a watcher process started with the run) removes them
within a second or two. This removes whatever is left (a reaper killed too,
SPLITBRAIN_REAPER=0, a host that rebooted): those of one run with --run, otherwise those of every run
whose harness process is gone (a run still in progress on this host is
spared; --all removes those too).
Images are kept (they are a cache; `docker rmi` removes them).

examples:
  splitbrain clean
  splitbrain clean --run 20261127113000-ab12cd
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", metavar="RUN_ID", help="only the run with this id (default: every run whose harness is gone)")
    p.add_argument("--all", action="store_true", help="also runs whose harness still runs on this host")


def run(args: argparse.Namespace) -> int:
    from harness.cluster import clean
    from harness.errors import UsageError
    from harness.images import ImageError, docker_client

    try:
        stuck: list[str] = []
        containers, networks = clean(args.run, client=docker_client(), include_live=args.all, stuck=stuck)
    except ImageError as e:
        raise UsageError(str(e)) from None
    what = f"run {args.run}" if args.run else "splitbrain runs"
    print(f"removed {containers} container(s) and {networks} network(s) of {what}")
    for line in stuck:  # what Docker refused even after a forced disconnect: a warning, not a failure
        print(f"splitbrain clean: warning: {line}", file=sys.stderr)
    return 0
