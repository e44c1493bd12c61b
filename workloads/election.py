"""The election workload: candidate processes campaign through a recipe and, while they believe they lead,
write to a shared resource; the history says who believed they led, when, and what the resource took.

Unlike register and set, its clients are not the run loop's: each candidate is a node of its own
(targets/candidates), running a recipe against the coordination service (the spec's target). The
harness (harness/election.py) collects their claims and runs the shared resource, `Resource` below.
The history contract (read by checkers.mutual_exclusion):

- a candidate's claims: process "<candidate>.<incarnation>[.<n>]", node = the candidate, key
  "leadership"; f acquire (ok output {"token", "deadline"}), renew ({"token", "deadline"}), release
  and lost ({"token", "why"}), start (a new incarnation). Every value and output carries "at" (ns on
  the history's clock, from the candidate's unskewed monotonic clock) and "local" (its wall clock, s).
  The event's own time is when the harness collected it, which can be much later (a paused candidate).
- leader work: process "resource", f "work", node = the candidate, value {"candidate", "token",
  "deadline", "seq", "fenced", "highest"}: ok if the resource accepted it, fail if it rejected it,
  stamped with the resource's (the history's) clock.

Fencing (`fencing: on`): the resource rejects a write whose token is below the highest it accepted
(Kleppmann's fencing token). Off (the default, as most applications are written) it accepts everything.
"""

from __future__ import annotations

import threading
from typing import Any

from checkers.mutual_exclusion import MutualExclusionChecker
from checkers.verdict import Checker

CLAIM_KEY = "leadership"
FENCING = ("off", "on")


class Resource:
    """The shared resource's decision: accept, or (fenced) reject a token below the highest accepted."""

    def __init__(self, fenced: bool):
        self.fenced = fenced
        self.highest: Any = None
        self.accepted = 0
        self.rejected = 0
        self.lock = threading.Lock()

    def decide(self, token: Any) -> tuple[bool, Any]:
        """(accepted, the highest token accepted before this one); thread-safe."""
        with self.lock:
            before = self.highest
            ok = not (self.fenced and before is not None and _below(token, before))
            if ok:
                if before is None or _below(before, token):
                    self.highest = token
                self.accepted += 1
            else:
                self.rejected += 1
            return ok, before


def _below(a: Any, b: Any) -> bool:
    try:
        return a < b
    except TypeError:  # a token the resource cannot order is never below anything
        return False


class ElectionWorkload:
    name = "election"
    model = "mutual-exclusion"
    autonomous = True  # its processes are the candidates: the run loop's client workers stay idle

    def __init__(self, seed: int, recipe: str = "raftkv-lease", fencing: str = "off", candidates: int = 3,
                 ttl: float = 2.0, nemesis_on: str = "candidates"):
        self.seed, self.recipe, self.fencing, self.candidates, self.ttl = seed, recipe, fencing, candidates, ttl
        self.nemesis_on = nemesis_on  # whose nodes the nemesis faults: "candidates" or "service"

    def next_op(self) -> dict[str, Any]:
        raise RuntimeError("the election workload's operations come from its candidates, not from next_op")

    def completed(self, op: dict[str, Any], outcome: dict[str, Any]) -> None:
        pass

    def final_ops(self) -> list[dict[str, Any]]:
        return []

    def checkers(self) -> list[Checker]:
        return [MutualExclusionChecker()]
