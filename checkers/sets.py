"""Set checker: which acknowledged adds the final read lost, and what it returned that nobody added.

Pure: client operations in, a result dict out. An add that completed `ok`
before the final read began must be in it (else it is lost, reported with the
add operation itself); an element the read returned must have been attempted
(else unexpected); no element may appear twice (duplicated). Adds with an
unknown outcome (`info`) may or may not be present; they are counted, not
judged. Without a successful final read the verdict is "unknown".
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from checkers.verdict import Anomaly, CheckInput, Verdict, short
from history.operation import Operation


def _op_evidence(op: Operation) -> dict[str, Any]:
    return {
        "index": op.index,
        "process": op.process,
        "f": op.f,
        "value": op.value,
        "status": op.status,
        "call": op.call,
        "ret": None if op.ret == float("inf") else op.ret,
        "node": op.node,
    }


def check(ops: list[Operation], add_f: str = "add", read_f: str = "read") -> dict[str, Any]:
    """The set verdict for a history of adds and final reads."""
    adds = [o for o in ops if o.f == add_f]
    reads = [o for o in ops if o.f == read_f and o.status == "ok" and o.output is not None]
    attempted: dict[Any, Operation] = {}
    for a in adds:
        attempted.setdefault(a.value, a)
    counts = {
        "attempted": len(adds),
        "ok": sum(1 for a in adds if a.status == "ok"),
        "fail": sum(1 for a in adds if a.status == "fail"),
        "info": sum(1 for a in adds if a.status == "info"),
    }
    if not reads:
        return {
            "valid": "unknown",
            "reason": "no final read of the set succeeded",
            "counts": counts,
            "lost": [],
            "unexpected": [],
            "duplicated": [],
        }
    final = max(reads, key=lambda o: (o.ret, o.index))
    elements = list(final.output)
    seen = Counter(_hashable(e) for e in elements)
    present = set(seen)
    lost = [
        _op_evidence(a)
        for a in adds
        if a.status == "ok" and a.ret < final.call and _hashable(a.value) not in present
    ]
    attempted_values = {_hashable(v) for v in attempted}
    unexpected = sorted((e for e in present if e not in attempted_values), key=repr)
    duplicated = {repr(e): n for e, n in seen.items() if n > 1}
    info_values = {_hashable(a.value) for a in adds if a.status == "info"}
    ok_values = {_hashable(a.value) for a in adds if a.status == "ok"}
    recovered = len(info_values & present - ok_values)
    valid = not lost and not unexpected and not duplicated
    return {
        "valid": valid,
        "counts": {**counts, "read": len(elements), "recovered": recovered},
        "final_read": _op_evidence(final),
        "lost": sorted(lost, key=lambda e: e["index"]),
        "lost_count": len(lost),
        "unexpected": unexpected,
        "duplicated": duplicated,
    }


class SetChecker:
    """`check` as a `Checker`."""

    name = "set"

    def __init__(self, add_f: str = "add", read_f: str = "read"):
        self.add_f, self.read_f = add_f, read_f

    def check(self, history: CheckInput) -> Verdict:
        started = time.monotonic()
        result = check(list(history.ops), self.add_f, self.read_f)
        return Verdict(self.name, result["valid"], tuple(self.anomalies(result)), details=result,
                       seconds=round(time.monotonic() - started, 3), reason=result.get("reason"))

    @staticmethod
    def anomalies(result: dict[str, Any]) -> list[Anomaly]:
        """Lost adds (one anomaly for all of them), unexpected elements, duplicated elements."""
        out = []
        final = result.get("final_read") or {}
        final_ops = (final["index"],) if "index" in final else ()
        lost = result.get("lost") or []
        if lost:
            first = lost[0]
            out.append(Anomaly(
                "lost",
                f"{len(lost)} acknowledged add{'s' * (len(lost) > 1)} lost: element {short(first.get('value'))} "
                f"was added by p{first.get('process')} (ok at {(first.get('ret') or first.get('call')) / 1e9:.3f}s) "
                "but the final read does not have it",
                min(e["call"] for e in lost),
                max((final.get("ret") or final.get("call") or 0), *(e.get("ret") or e["call"] for e in lost)),
                tuple(e["index"] for e in lost) + final_ops,
                evidence={"lost": lost, "lost_count": result.get("lost_count", len(lost)), "final_read": final},
                # When the first lost add was acknowledged: from then on the store owed it.
                at=min((e["ret"] for e in lost if isinstance(e.get("ret"), (int, float))), default=None)))
        if result.get("unexpected"):
            out.append(Anomaly("unexpected", f"the final read returned {len(result['unexpected'])} element(s) "
                               f"nobody added: {short(result['unexpected'])}", operations=final_ops,
                               evidence={"unexpected": result["unexpected"]}))
        if result.get("duplicated"):
            out.append(Anomaly("duplicated", "the final read returned elements more than once: "
                               f"{short(result['duplicated'])}", operations=final_ops,
                               evidence={"duplicated": result["duplicated"]}))
        return out


def _hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    return v
