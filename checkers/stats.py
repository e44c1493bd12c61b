"""The statistics of a history as a checker that never fails: counts, availability, throughput, latency.

The last member of every run's checkers (like Jepsen's `stats`): its verdict
is always valid, and its details are results.json's `stats`, which the
summary's ops and availability lines print.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from checkers.verdict import CheckInput, Verdict


class StatsChecker:
    name = "stats"

    def check(self, history: CheckInput) -> Verdict:
        started = time.monotonic()
        stats = op_stats(list(history.ops))
        return Verdict(self.name, True, details=stats, seconds=round(time.monotonic() - started, 3))


def op_stats(ops: list) -> dict[str, Any]:
    """Counts, availability (share of ops that were ok) and latency percentiles of ok ops."""
    counts = Counter(o.status for o in ops)
    total = sum(counts.values())
    lat = sorted((o.ret - o.call) / 1e6 for o in ops if o.status == "ok")

    def pct(p: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))], 3) if lat else None

    span = (max(o.call for o in ops) - min(o.call for o in ops)) / 1e9 if ops else 0.0
    # Time-based availability: the share of seconds in which some operation was
    # acknowledged. Unlike the ok share it does not depend on how many clients
    # were pinned to followers that rightly refuse.
    served_seconds = None
    if ops:
        first = min(o.call for o in ops)
        last = max(o.ret if o.ret != float("inf") else o.call for o in ops)
        buckets = int((last - first) // 1e9) + 1
        served = {int((o.ret - first) // 1e9) for o in ops if o.status == "ok"}
        served_seconds = round(len(served) / buckets, 4) if buckets else None
    return {
        "ops": total,
        "ok": counts.get("ok", 0),
        "fail": counts.get("fail", 0),
        "info": counts.get("info", 0),
        "availability": round(counts.get("ok", 0) / total, 4) if total else None,
        "served_seconds_share": served_seconds,
        "throughput_per_s": round(total / span, 1) if span > 0 else None,
        "latency_ms": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": lat[-1] if lat else None},
    }
