"""Command line for one paxoskv node: ``python3 -m targets.paxoskv --id n1 --peers ... --client ... --data ...``.

raftkv's command line (targets/raftkv/__main__.py): the same flags, one-line
errors with exit 2, graceful stop on SIGTERM; --election-timeout is the
randomized takeover timeout, and --bug names paxoskv's bugs.
"""

from __future__ import annotations

import sys

from targets.paxoskv.failpoints import FAILPOINTS
from targets.paxoskv.node import BUGS, PaxosNodeConfig
from targets.paxoskv.server import PaxosKVServer
from targets.raftkv.__main__ import build_parser
from targets.raftkv.__main__ import main as raftkv_main

PROG = "python3 -m targets.paxoskv"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(PROG, BUGS, FAILPOINTS,
                          "Run one node of paxoskv, splitbrain's built-in Multi-Paxos key-value store.")
    return raftkv_main(argv, name="paxoskv", parser=parser, node_config=PaxosNodeConfig,
                       server_class=PaxosKVServer)


if __name__ == "__main__":
    sys.exit(main())
