"""The split-brain checker as a `Checker`: `checkers.election.check` wrapped, its anomalies as `Anomaly` values.

A default member of every run's checkers. Its details are election's result
dict unchanged (anomalies in its own shape, overlaps, the failover timeline);
`anomalies()` reads that shape, for fresh verdicts and for run folders
written before verdicts carried `found`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from checkers.election import check as election_check
from checkers.verdict import Anomaly, CheckInput, Verdict


class SplitBrainChecker:
    name = "split-brain"

    def check(self, history: CheckInput) -> Verdict:
        started = time.monotonic()
        result = election_check(history.events, history.ops, fault_facts=history.fault_facts)
        return Verdict(self.name, result["valid"], tuple(self.anomalies(result)), details=result,
                       seconds=round(time.monotonic() - started, 3))

    @staticmethod
    def anomalies(result: Mapping[str, Any]) -> list[Anomaly]:
        return [_anomaly(a) for a in result.get("anomalies") or [] if isinstance(a, Mapping)]


def _times(o: Mapping[str, Any]) -> tuple[Any, Any]:
    return o.get("start", o.get("time", 0)), o.get("end", o.get("time", 0))


def _anomaly(a: Mapping[str, Any]) -> Anomaly:
    kind = a.get("type", "anomaly")
    obs = [o for o in a.get("observations") or [] if isinstance(o, Mapping)]
    start, end = a.get("start"), a.get("end")
    if start is None and obs:
        start = min(_times(o)[0] for o in obs)
        end = max(_times(o)[1] for o in obs)
    if start is None and a.get("time") is not None:
        start = end = a["time"]
    # When it became visible: its own start or time; two leaders of one term become
    # visible when the second is first seen leading.
    at = next((a[k] for k in ("start", "time") if isinstance(a.get(k), (int, float))), None)
    if at is None:
        seen = [o.get("start", o.get("time")) for o in obs]
        seen = [x for x in seen if isinstance(x, (int, float))]
        at = max(seen) if seen else None
    evidence: dict[str, Any] = dict(a)
    if len(obs) > 1 and all("start" in o and "end" in o for o in obs):
        lo, hi = max(o["start"] for o in obs), min(o["end"] for o in obs)
        if lo <= hi:  # two leaders at once: the overlap is what matters
            evidence["focus"] = [lo, hi]
    served = a.get("operations") or {}
    ops = tuple(o["index"] for lst in served.values() for o in lst) if isinstance(served, Mapping) else ()
    nodes = a.get("nodes") or ([a["node"]] if a.get("node") else [])
    return Anomaly(kind, a.get("summary") or kind, start, end, ops, tuple(nodes), evidence, at)
