"""The raftkv state machine: a key-value map plus the at-most-once dedupe table.

Applying a write returns the HTTP status and JSON body its client gets. A write
that carries a request_id is applied at most once: a retry finds the first
outcome in the dedupe table and gets the same answer without touching the map.
The dedupe table is part of the state, so snapshots carry it.
"""

from __future__ import annotations

from dataclasses import dataclass

NOT_FOUND = (404, {"error": "not-found"})

# How many request ids the dedupe table remembers, oldest forgotten first: a
# retry is recognised while it is among this many recent writes. Bounded so that
# snapshots stay small; every replica evicts identically because it applies the
# same writes in the same order.
DEDUPE_CAPACITY = 10_000


@dataclass(frozen=True)
class Outcome:
    """What a client sees for one operation."""

    status: int
    body: dict


class KVState:
    """Deterministic: the same writes in the same order give the same state everywhere."""

    def __init__(self, data: dict | None = None, dedupe: dict | None = None):
        self.data: dict[str, object] = dict(data or {})
        # request_id -> [status, body] of the first application
        self.dedupe: dict[str, list] = dict(dedupe or {})

    def read(self, key: str) -> Outcome:
        if key in self.data:
            return Outcome(200, {"value": self.data[key]})
        return Outcome(*NOT_FOUND)

    def apply(self, op: dict) -> Outcome:
        """Apply a put or cas (as proposed by a client) and return its outcome."""
        request_id = op.get("request_id")
        if request_id is not None and request_id in self.dedupe:
            status, body = self.dedupe[request_id]
            return Outcome(status, dict(body))
        outcome = self._apply_once(op)
        if request_id is not None:
            self.dedupe[request_id] = [outcome.status, outcome.body]
            if len(self.dedupe) > DEDUPE_CAPACITY:
                del self.dedupe[next(iter(self.dedupe))]
        return outcome

    def _apply_once(self, op: dict) -> Outcome:
        key = op["key"]
        if op["f"] == "put":
            self.data[key] = op["value"]
            return Outcome(200, {})
        if op["f"] == "cas":
            # An absent key never matches: there is no value to compare with.
            if key in self.data and self.data[key] == op["from"]:
                self.data[key] = op["to"]
                return Outcome(200, {})
            return Outcome(409, {"error": "cas-mismatch", "value": self.data.get(key)})
        raise ValueError(f"not a write operation: {op!r}")

    def to_json(self) -> dict:
        """The whole state as a JSON-able dict, for snapshots."""
        return {"data": dict(self.data), "dedupe": {k: list(v) for k, v in self.dedupe.items()}}

    @classmethod
    def from_json(cls, state: dict) -> KVState:
        return cls(state.get("data"), state.get("dedupe"))
