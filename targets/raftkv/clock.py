"""The one clock a raftkv node reads, skewable at run time through a control file.

Every piece of time a node uses (when to tick, what wall time to report)
comes from one ``Clock``. Started with ``--clock-file PATH``, the node checks
that file (a cheap ``stat`` at most every 100 ms of real time) and, when it
changed, reads it. The file holds one JSON object::

    {"offset_s": 12.5, "rate": 1.0}

- ``offset_s`` (float, seconds, default 0): added to the real wall clock.
  ``Clock.wall()`` = real wall time + offset_s. The node reports it as
  ``wall_time`` in ``GET /status`` so a nemesis can verify a skew took effect.
- ``rate`` (float > 0, default 1): how fast the node's monotonic clock runs
  compared to the real one. Ticks come ``rate`` times as often, so election
  timeouts, heartbeats and leases run fast (rate > 1) or slow (rate < 1).
  The rate in force is reported as ``clock_rate`` in ``GET /status``.
  A rate change never makes the monotonic clock jump: it bends from "now".

A missing file means no skew. A file that does not parse, or holds a
non-positive rate, is ignored (the previous setting stays) and reported once
per change via ``last_error``. Write the file atomically (write a temp file,
then rename) so the node never reads half of it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

POLL_INTERVAL_S = 0.1


class Clock:
    def __init__(self, control_file: str | None = None,
                 real_monotonic: Callable[[], float] = time.monotonic,
                 real_wall: Callable[[], float] = time.time):
        self.control_file = control_file
        self._real_monotonic = real_monotonic
        self._real_wall = real_wall
        self.offset_s = 0.0
        self.rate = 1.0
        self.last_error: str | None = None
        # monotonic() = self._base_virtual + (real - self._base_real) * rate
        self._base_real = real_monotonic()
        self._base_virtual = self._base_real
        self._last_poll = float("-inf")
        self._seen_stamp: tuple | None = None

    def monotonic(self) -> float:
        """Seconds on this node's (possibly rate-skewed) monotonic clock."""
        self.poll()
        return self._virtual_at(self._real_monotonic())

    def wall(self) -> float:
        """Seconds since the epoch on this node's (possibly offset) wall clock."""
        self.poll()
        return self._real_wall() + self.offset_s

    def real_seconds_until(self, virtual_deadline: float) -> float:
        """Real seconds to sleep until the monotonic clock reaches ``virtual_deadline``."""
        now = self.monotonic()
        return max(0.0, (virtual_deadline - now) / self.rate)

    def _virtual_at(self, real: float) -> float:
        return self._base_virtual + (real - self._base_real) * self.rate

    def poll(self, force: bool = False) -> bool:
        """Re-read the control file if it changed; True when the settings changed."""
        if self.control_file is None:
            return False
        real = self._real_monotonic()
        if not force and real - self._last_poll < POLL_INTERVAL_S:
            return False
        self._last_poll = real
        try:
            st = os.stat(self.control_file)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        if stamp == self._seen_stamp:
            return False
        self._seen_stamp = stamp
        if stamp is None:
            return self._set(0.0, 1.0)  # file removed: back to the real clock
        try:
            with open(self.control_file) as f:
                spec = json.load(f)
            offset = float(spec.get("offset_s", 0.0))
            rate = float(spec.get("rate", 1.0))
            if not rate > 0:
                raise ValueError(f"rate must be > 0, got {rate}")
        except (OSError, ValueError, TypeError, AttributeError) as e:
            self.last_error = f"clock file {self.control_file}: {e}"
            return False
        self.last_error = None
        return self._set(offset, rate)

    def _set(self, offset_s: float, rate: float) -> bool:
        if (offset_s, rate) == (self.offset_s, self.rate):
            return False
        real = self._real_monotonic()
        self._base_virtual = self._virtual_at(real)
        self._base_real = real
        self.offset_s = offset_s
        self.rate = rate
        return True
