"""Failpoints: crash the node at one chosen instant, on request (only with ``--failpoints``).

A crash from outside (SIGKILL from the nemesis) lands wherever the process
happens to be; some bugs need it to land in a window a few milliseconds wide.
Forgetting a vote (the no-persist-vote bug) only splits the brain if the voter
crashes after its vote has left and before the winner's first append reaches
it, since after that its log is ahead of any other candidate of that term and
it would refuse them anyway. Committing an old term's entry by counting (the
commit-old-term bug, Raft's Figure 8) needs leaders that write a client entry
to their own disk and die before it reaches anyone, term after term. etcd's
robustness tests reach such windows the same way, with gofail failpoints
compiled into the server.

The HTTP routes (``httpapi``): ``GET /failpoints`` lists them with their
state, ``PUT /failpoints/NAME`` arms one, ``DELETE /failpoints/NAME``
disarms it. A node started without ``--failpoints`` answers 404 to all three.
Arming is in memory only: a node that crashed at a failpoint comes back with
none armed.
"""

from __future__ import annotations

# Exit status of a crash at a failpoint: the nemesis tells it from a SIGKILL (137) or a failure (1).
CRASH_EXIT_CODE = 86

CRASH_AFTER_VOTE = "crash-after-vote"
CRASH_BEFORE_SEND_FIRST_WRITE = "crash-before-send-first-write"

FAILPOINTS = {
    CRASH_AFTER_VOTE: "exit once a granted vote (real vote, not prevote) has left, before "
                        "applying anything that arrived after its request",
    CRASH_BEFORE_SEND_FIRST_WRITE: "exit, leading, once a client entry of the current term is on disk, "
                                   "before any message of the Ready that holds it leaves",
}


class UnknownFailpoint(KeyError):
    pass


class Failpoints:
    def __init__(self, enabled: bool, known: dict[str, str] | None = None):
        self.enabled = enabled
        self.known = FAILPOINTS if known is None else known  # name -> what happens there (paxoskv has its own)
        self.armed: set[str] = set()

    def set(self, name: str, on: bool) -> None:
        if name not in self.known:
            raise UnknownFailpoint(name)
        if on:
            self.armed.add(name)
        else:
            self.armed.discard(name)

    def describe(self) -> dict:
        return {name: {"armed": name in self.armed, "what": what} for name, what in self.known.items()}


def granted_vote(messages: list[dict]) -> dict | None:
    """The first granted (real) vote among a Ready's outgoing messages, if any."""
    for msg in messages:
        if msg.get("type") == "vote_resp" and msg.get("granted"):
            return msg
    return None


def own_client_entry(entries: list[dict], term: int | None) -> dict | None:
    """The first client entry ("op", not a no-op or a configuration) of `term` among a Ready's entries."""
    for e in entries:
        if e.get("kind") == "op" and e.get("term") == term:
            return e
    return None
