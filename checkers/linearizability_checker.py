"""The linearizability checker as a `Checker`: the search (checkers/linearizability.py) over the
operations a workload names, with its evidence as one `Anomaly` and one sentence a person can follow.

Kept apart from the search so the search stays a pure function of operations and a model, as
split_brain.py keeps the split-brain checker apart from election.py.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from checkers.linearizability import check
from checkers.models import Model, get_model
from checkers.verdict import Anomaly, CheckInput, Verdict, short


class LinearizabilityChecker:
    """`check` as a `Checker`: the model comes from the workload that declares it; `fs`, if given,
    are the operation names it judges (the rest of the history is another checker's)."""

    name = "linearizability"

    def __init__(self, model: Model | str = "kv", fs: Sequence[str] | None = None):
        self.model = get_model(model) if isinstance(model, str) else model
        self.fs = frozenset(fs) if fs is not None else None

    def check(self, history: CheckInput) -> Verdict:
        started = time.monotonic()
        ops = [o for o in history.ops if self.fs is None or o.f in self.fs]
        result = check(ops, self.model, time_limit=history.time_limit)
        return Verdict(self.name, result["valid"], tuple(self.anomalies(result)), details=result,
                       seconds=round(time.monotonic() - started, 3))

    @staticmethod
    def anomalies(result: dict) -> list[Anomaly]:
        """The one anomaly a failing result holds: the partition that cannot be linearized."""
        if result.get("valid") is not False:
            return []
        ev = result.get("evidence") or {}
        ops = ev.get("operations") or []
        times = [o["call"] for o in ops] + [o["ret"] for o in ops if o.get("ret") is not None]
        blocked = [b["op"] for b in telling_first(ev) if "op" in b]
        last_write = last_write_of_prefix(ev)
        # Visible when the op that cannot be placed returned (else the last op that did).
        rets = {o.get("index"): o.get("ret") or o.get("call") for o in ops}
        seen = [t for t in (rets.get(b) for b in blocked) if isinstance(t, (int, float))]
        if not seen:
            seen = [o["ret"] for o in ops if isinstance(o.get("ret"), (int, float))][-1:]
        evidence = {**ev, "focus_operations": blocked[:1] + ([last_write["index"]] if last_write else []),
                    "last_write": last_write["index"] if last_write else None}
        return [Anomaly("not-linearizable", sentence(ev), min(times) if times else None,
                        max(times) if times else None, tuple(o["index"] for o in ops), (), evidence,
                        min(seen) if seen else None)]


def last_write_of_prefix(ev: dict[str, Any]) -> dict[str, Any] | None:
    """The last write or cas the longest linearizable prefix placed (a cas that did not fail, so
    one that took effect): what a read placed next should have seen."""
    ops = {o["index"]: o for o in ev.get("operations", [])}
    for i in reversed(ev.get("linearized_prefix") or []):
        w = ops.get(i)
        if w and w["f"] in ("write", "cas") and w["status"] != "fail":
            return w
    return None


def telling_first(ev: dict[str, Any]) -> list[dict[str, Any]]:
    """The ops that cannot be placed, the one that says most first: a read that returned (it saw
    something it should not have), then any op that completed, then those whose outcome is unknown.
    An unknown op is never the culprit alone (it may not have happened), and a sentence naming one
    hides the stale read beside it."""
    ops = {o["index"]: o for o in ev.get("operations", [])}

    def rank(b: dict[str, Any]) -> int:
        op = ops.get(b.get("op")) or {}
        if op.get("status") == "ok":
            return 0 if op.get("f") == "read" else 1
        return 2

    return sorted((b for b in ev.get("blocked") or [] if isinstance(b, dict)), key=rank)


def sentence(ev: dict[str, Any]) -> str:
    """One sentence for a partition's evidence: which read returned what, after which write."""
    key = ev.get("key")
    blocked = (telling_first(ev) or [{}])[0]
    ops = {o["index"]: o for o in ev.get("operations", [])}
    op = ops.get(blocked.get("op"))
    state = ev.get("state_after_prefix")
    last_write = last_write_of_prefix(ev)
    if op and op["f"] == "read" and op["status"] == "ok":
        read = short(op.get("output"))
        if last_write is not None:
            value = last_write["value"]
            wrote = short(value[1] if last_write["f"] == "cas" and isinstance(value, list) else value)
            what = "a write" if last_write["f"] == "write" else "a cas"
            who = f"p{last_write['process']}"
            if last_write.get("ret") is not None and last_write["ret"] < op["call"]:
                return (f"key {key}: a read returned {read} after {what} of {wrote} had completed "
                        f"({who}, done at {last_write['ret'] / 1e9:.3f}s, before the read began at "
                        f"{op['call'] / 1e9:.3f}s)")
            return (f"key {key}: a read returned {read}, which no order of the operations explains: "
                    f"the longest linearizable prefix ends with {what} of {wrote} by {who}, leaving {state}")
        return f"key {key}: a read returned {read}, but the value at that point can only be {state}"
    if op:
        return (f"key {key}: {blocked.get('description', op.get('description'))} cannot be placed: "
                f"it needs {blocked.get('needs')}, but after the longest linearizable prefix the state is {state}")
    return f"key {key}: the history is not linearizable (state after the longest linearizable prefix: {state})"
