"""paxoskv's failpoints (raftkv's mechanism, targets/raftkv/failpoints.py): a promise is Paxos's vote.

`crash-after-vote` keeps raftkv's name so that the vote-crash fault
(nemesis/vote_crash.py) drives paxoskv unchanged: the node exits once a
granted promise has left, before anything that arrived after the prepare
(the new leader's first accept above all) is applied.
"""

from __future__ import annotations

from targets.paxoskv import messages as m
from targets.raftkv.failpoints import CRASH_AFTER_VOTE, CRASH_EXIT_CODE

FAILPOINTS = {
    CRASH_AFTER_VOTE: "exit once a granted promise (phase 1b) has left, before applying anything that "
                      "arrived after its prepare",
}


def granted_promise(messages: list[dict]) -> dict | None:
    """The first granted promise among a Ready's outgoing messages, if any."""
    for msg in messages:
        if msg.get("type") == m.PROMISE and msg.get("granted"):
            return msg
    return None


__all__ = ["CRASH_AFTER_VOTE", "CRASH_EXIT_CODE", "FAILPOINTS", "granted_promise"]
