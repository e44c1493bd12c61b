"""Prometheus text exposition of a raftkv node's counters, gauges and fsync latency.

The node core reports its own counters as a plain dict (``RaftKVNode.metrics()``);
the I/O side adds transport, HTTP and storage figures. This module only turns
those numbers into the text format scrapers read (version 0.0.4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PREFIX = "raftkv_"
ROLES = ("follower", "precandidate", "candidate", "leader")

# Core metric names the node is expected to report, with how to export them.
# Anything else it reports is exported as a gauge under its own (sanitised) name.
_KNOWN = {
    "elections_started": ("counter", "Elections this node started (became candidate)."),
    "leader_changes": ("counter", "Times this node saw the leader change."),
    "term": ("gauge", "Current term."),
    "commit_index": ("gauge", "Highest log index known committed."),
    "applied_index": ("gauge", "Highest log index applied to the key-value state."),
    "last_log_index": ("gauge", "Index of the last entry in the log."),
}


def _name(raw: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", raw)


def _number(v) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return repr(v)
    return str(v)


@dataclass
class Histogram:
    """A latency summary in seconds, exported as a Prometheus histogram (counts are cumulative)."""

    buckets: tuple[float, ...] = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
    counts: list[int] = field(default_factory=lambda: [0] * 10)
    count: int = 0
    total_seconds: float = 0.0

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.total_seconds += seconds
        for i, bound in enumerate(self.buckets):
            if seconds <= bound:
                self.counts[i] += 1


class Counters:
    """Named counters owned by the I/O side (transport, HTTP)."""

    def __init__(self):
        self.values: dict[str, int] = {}

    def inc(self, name: str, by: int = 1) -> None:
        self.values[name] = self.values.get(name, 0) + by

    def get(self, name: str) -> int:
        return self.values.get(name, 0)


def histogram(lines: list[str], name: str, help_text: str, h: Histogram) -> None:
    full = PREFIX + name
    lines.append(f"# HELP {full} {help_text}")
    lines.append(f"# TYPE {full} histogram")
    for bound, n in zip(h.buckets, h.counts, strict=True):
        lines.append(f'{full}_bucket{{le="{bound}"}} {n}')
    lines.append(f'{full}_bucket{{le="+Inf"}} {h.count}')
    lines.append(f"{full}_sum {h.total_seconds!r}")
    lines.append(f"{full}_count {h.count}")


def render(node_metrics: dict, role: str, io_counters: dict[str, int],
           frames_rejected: dict[str, int], fsync: Histogram, tick_lateness: Histogram | None = None) -> str:
    """Return the /metrics body."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, object]]):
        full = PREFIX + _name(name)
        if kind == "counter" and not full.endswith("_total"):
            full += "_total"
        lines.append(f"# HELP {full} {help_text}")
        lines.append(f"# TYPE {full} {kind}")
        for labels, value in samples:
            lines.append(f"{full}{labels} {_number(value)}")

    for key, value in sorted(node_metrics.items()):
        if not isinstance(value, (int, float)):
            continue  # strings such as the role are exported separately
        kind, help_text = _KNOWN.get(key, ("gauge", f"Node core figure {key}."))
        metric(key, kind, help_text, [("", value)])

    metric("role", "gauge", "1 for the role this node currently has.",
           [(f'{{role="{r}"}}', 1 if r == role else 0) for r in sorted(set(ROLES) | {role})])

    metric("frames_rejected", "counter",
           "Peer connections and frames dropped before reaching Raft, by reason (transport.REJECT_REASONS).",
           [(f'{{reason="{reason}"}}', n) for reason, n in sorted(frames_rejected.items())])

    for key, value in sorted(io_counters.items()):
        metric(key, "counter", f"I/O counter {key}.", [("", value)])

    histogram(lines, "fsync_seconds", "Latency of fsync on the write-ahead log.", fsync)
    if tick_lateness is not None:
        histogram(lines, "tick_lateness_seconds",
                  "How late the driver handled a due tick: event-loop stalls plus driver waits (a long write).",
                  tick_lateness)
    return "\n".join(lines) + "\n"
