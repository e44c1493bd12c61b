"""Readers and writers for history files: ours (JSON Lines) and other tools' formats.

Every reader yields `history.operation.Operation`s (and, where the format has
them, raw events) and raises `FormatError` for anything it cannot read, so the
CLI can print one line with the file and line number instead of a traceback.
"""

from __future__ import annotations


class FormatError(Exception):
    """A history file that cannot be read: says which file, which line and why."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.message = message
        self.path = path
        self.line = line
        where = path or "<history>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}")
