"""The set workload: unique adds during the faults, one read of the whole set after healing.

Every add carries a fresh integer, so the final read says exactly which adds
survived; `checkers.sets` reports the lost, unexpected and duplicated ones.
"""

from __future__ import annotations

from typing import Any

from checkers.sets import SetChecker
from checkers.verdict import Checker

SET_KEY = "set"


class SetWorkload:
    name = "set"
    model = "set"

    def __init__(self, seed: int):
        self.seed = seed
        self._next = 0

    def next_op(self) -> dict[str, Any]:
        self._next += 1
        return {"f": "add", "key": SET_KEY, "value": self._next}

    def completed(self, op: dict[str, Any], outcome: dict[str, Any]) -> None:
        pass

    def final_ops(self) -> list[dict[str, Any]]:
        return [{"f": "read", "key": SET_KEY, "value": None}]

    def checkers(self) -> list[Checker]:
        return [SetChecker()]
