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
    "matrix",
    "merge",
    "shrink",
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
        # says path:line: reason), never a traceback. Bounded, because some
        # messages quote the input.
        print(f"splitbrain {args.command}: {_short(str(e))}", file=sys.stderr)
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
    except (Exception, RecursionError, MemoryError) as e:  # noqa: BLE001 - the last resort
        # Only a bug gets here: one line for the user, the traceback kept in a
        # file for the bug report.
        saved = _save_traceback(args.command)
        print(f"splitbrain {args.command}: internal error, a bug in splitbrain ({type(e).__name__}: "
              f"{_short(str(e), 200)}); traceback saved to {saved}", file=sys.stderr)
        return ExitCode.USAGE


MAX_MESSAGE = 600


def _short(text: str, limit: int = MAX_MESSAGE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _save_traceback(command: str) -> str:
    """Write the current exception's traceback to a file (SPLITBRAIN_CRASH_DIR, else the temp folder)."""
    import tempfile
    import traceback

    folder = os.environ.get("SPLITBRAIN_CRASH_DIR") or tempfile.gettempdir()
    try:
        fd, path = tempfile.mkstemp(prefix=f"splitbrain-{command}-crash-", suffix=".txt", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(f"splitbrain {' '.join(sys.argv[1:])}\n\n")
            out.write(traceback.format_exc())
        return path
    except OSError as e:
        return f"(nowhere: {e.strerror or e})"


if __name__ == "__main__":
    sys.exit(main())
