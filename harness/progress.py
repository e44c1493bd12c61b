"""The live progress line of a run: elapsed time, phase, ops ok/fail/info, active faults, leader.

On a terminal the line is redrawn in place; otherwise (CI logs) one line is
printed every few seconds, so a log stays readable.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Snapshot:
    elapsed: float
    phase: str
    ok: int
    fail: int
    info: int
    faults: list[str] = field(default_factory=list)
    leader: str | None = None

    def line(self) -> str:
        faults = ", ".join(self.faults) if self.faults else "none"
        total = self.ok + self.fail + self.info
        rate = total / self.elapsed if self.elapsed > 0 else 0.0
        return (
            f"[{self.elapsed:6.1f}s {self.phase:<8}] ops ok {self.ok} fail {self.fail} info {self.info}"
            f" ({rate:.0f}/s) | faults: {faults} | leader: {self.leader or '-'}"
        )


class Progress:
    """Shows snapshots: redrawn in place on a TTY, else at most one line per `every` seconds."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None, every: float = 5.0, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.every = every
        self.quiet = quiet
        self._last_print = float("-inf")
        self._drawn = False

    def show(self, snap: Snapshot, force: bool = False) -> None:
        if self.quiet:
            return
        text = snap.line()
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
            self._drawn = True
            self.stream.flush()
            return
        now = time.monotonic()
        if force or now - self._last_print >= self.every:
            self._last_print = now
            self.stream.write(text + "\n")
            self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (a phase change), above the redrawn progress line."""
        if self.quiet:
            return
        if self.tty and self._drawn:
            self.stream.write("\r\x1b[2K")
            self._drawn = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._drawn and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
