"""The `splitbrain` command line: one subcommand per module in harness/commands.

Each command module exposes `NAME`, `HELP`, `add_arguments(parser)` and
`run(args) -> int`. Adding a command is one line in COMMANDS.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from checkers.verdict import ExitCode
from harness.errors import UsageError
from history.formats import FormatError

# (module under harness.commands). Order is the order in --help.
COMMANDS: list[str] = [
    "run",
    "check",
    "images",
    "clean",
    "report",
    "bench",
    "suite",
    "new_target",
    "export",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="splitbrain",
        description=(
            "Chaos and verification harness: run a replicated store in Docker, "
            "inject partitions, crashes, pauses and clock skew, record every "
            "operation and check the history for split-brain and linearizability."
        ),
        epilog="Exit codes: 0 valid, 1 anomaly found, 2 usage or infrastructure error, 3 unknown.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"harness.commands.{name}")
        p = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return ExitCode.USAGE
    try:
        return args._run(args)
    except (UsageError, FormatError) as e:
        # A user's mistake or a bad input file: one line (FormatError already
        # says path:line: reason), never a traceback.
        print(f"splitbrain {args.command}: {' '.join(str(e).split())}", file=sys.stderr)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        print("splitbrain: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `splitbrain check ... | head`: the reader left; that is not an error
        # worth a traceback. Point stdout at devnull so the interpreter's own
        # flush at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
