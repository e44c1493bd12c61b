"""The harness's user-facing error: a mistake the user can fix, printed as one line with exit 2.

It lives apart from harness/cli.py so that `python -m harness.cli`, which loads
the CLI module a second time as __main__, still catches the one class every
command raises.
"""


class UsageError(Exception):
    """A mistake the user can fix: printed as one line, exit code 2."""
