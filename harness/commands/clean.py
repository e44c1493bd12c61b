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

With --docker-hosts, every engine named (a run whose nodes were placed on
several engines left containers on each); with --run, the host forwarding
rules such a run opened between engines on this machine go too.

examples:
  splitbrain clean
  splitbrain clean --run 20261127113000-ab12cd
  splitbrain clean --docker-hosts default,unix:///run/docker2.sock
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", metavar="RUN_ID", help="only the run with this id (default: every run whose harness is gone)")
    p.add_argument("--all", action="store_true", help="also runs whose harness still runs on this host")
    p.add_argument("--docker-hosts", metavar="A,B,...",
                   help="clean these Docker engines (contexts, URLs or default) instead of the environment's one")


def run(args: argparse.Namespace) -> int:
    from harness import engines
    from harness.cluster import clean
    from harness.errors import UsageError

    try:
        names = engines.parse_hosts(args.docker_hosts) if args.docker_hosts else [engines.DEFAULT]
        stuck: list[str] = []
        containers = networks = 0
        for name in dict.fromkeys(names):
            c, n = clean(args.run, client=engines.connect(name), include_live=args.all, stuck=stuck)
            containers, networks = containers + c, networks + n
    except engines.EngineError as e:
        raise UsageError(str(e)) from None
    if args.run:
        engines.close_forwarding(args.run)
    what = f"run {args.run}" if args.run else "splitbrain runs"
    where = f" on {len(set(names))} engines" if len(set(names)) > 1 else ""
    print(f"removed {containers} container(s) and {networks} network(s) of {what}{where}")
    for line in stuck:  # what Docker refused even after a forced disconnect: a warning, not a failure
        print(f"splitbrain clean: warning: {line}", file=sys.stderr)
    return 0
