"""The register workload: read, write and cas on many independent keys, each checked for linearizability.

Like Jepsen's independent keys, a key is retired after `ops_per_key`
operations and a fresh key takes its place, so each key's history stays short
enough for the linearizability search however long the run is. Values written
to a key are unique (a per-key counter), so a read says exactly which write it
saw; a cas goes from a value recently written to the key to a fresh one.
"""

from __future__ import annotations

import random
from typing import Any

from checkers.linearizability_checker import LinearizabilityChecker
from checkers.verdict import Checker


class RegisterWorkload:
    name = "register"
    model = "kv"

    def __init__(self, seed: int, keys: int = 5, ops_per_key: int = 200):
        self.rng = random.Random(f"{seed}:register")
        self.ops_per_key = ops_per_key
        self._next_key = 0
        self.used: list[str] = []  # every key ever issued, in order
        self.active: list[str] = [self._new_key() for _ in range(max(1, keys))]
        self._issued: dict[str, int] = {}
        self._next_value: dict[str, int] = {}
        self._written: dict[str, list[int]] = {}
        self._last: dict[str, int] = {}  # the value an ok op most recently saw or set

    def _new_key(self) -> str:
        key = f"k{self._next_key}"
        self._next_key += 1
        self.used.append(key)
        return key

    def _fresh(self, key: str) -> int:
        v = self._next_value.get(key, 0) + 1
        self._next_value[key] = v
        self._written.setdefault(key, []).append(v)
        return v

    def next_op(self) -> dict[str, Any]:
        slot = self.rng.randrange(len(self.active))
        key = self.active[slot]
        n = self._issued.get(key, 0) + 1
        self._issued[key] = n
        if n >= self.ops_per_key:
            self.active[slot] = self._new_key()
        roll = self.rng.random()
        if roll < 0.4:
            return {"f": "read", "key": key, "value": None}
        if roll < 0.7 or not self._written.get(key):
            return {"f": "write", "key": key, "value": self._fresh(key)}
        if key in self._last and self.rng.random() < 0.8:
            frm = self._last[key]
        else:
            frm = self.rng.choice(self._written[key][-3:])
        return {"f": "cas", "key": key, "value": [frm, self._fresh(key)]}

    def completed(self, op: dict[str, Any], outcome: dict[str, Any]) -> None:
        # The value an ok op last saw or set is the likeliest current one: cas from it,
        # so that cas succeeds often enough to matter.
        if outcome.get("type") != "ok":
            return
        f, v = op["f"], outcome.get("value")
        if f == "read" and isinstance(v, int):
            self._last[op["key"]] = v
        elif f == "write":
            self._last[op["key"]] = op["value"]
        elif f == "cas":
            self._last[op["key"]] = op["value"][1]

    def final_ops(self) -> list[dict[str, Any]]:
        return [{"f": "read", "key": k, "value": None} for k in self.used if self._issued.get(k)]

    def checkers(self) -> list[Checker]:
        return [LinearizabilityChecker(self.model, fs=("read", "write", "cas"))]
