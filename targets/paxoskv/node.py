"""The sans-IO paxoskv node: raftkv's node (state machine, reads, forwarding) around the Multi-Paxos core.

Everything but consensus is raftkv's (targets/raftkv/node.py): the same
Ready contract (persist, then send and reply), the same client requests and
replies, forwarding to the leader, ReadIndex-style reads through a quorum
round (or a lease with `lease_reads`), snapshots of the KV state. Only the
core differs: targets/paxoskv/core.py. A slot entry's "term" is the ballot
that first proposed its value, so a node still tells its own write from
another leader's value in the same slot, as raftkv does by term.
"""

from __future__ import annotations

from dataclasses import dataclass

from targets.paxoskv import messages as m
from targets.paxoskv.core import PaxosCore
from targets.raftkv.node import NodeConfig, RaftKVNode, Ready, Restored

# The deliberate bugs a paxoskv node can be started with; every one is off by default.
BUGS: dict[str, str] = {
    # Paxos's phase 2 rule ("Paxos Made Simple", P2c): a proposer whose prepare was promised must
    # propose, in each slot, the value of the highest-numbered proposal its quorum has accepted
    # there. Ignoring them lets a new leader choose a second value in a slot already chosen.
    "ignore-accepted": "a new leader ignores the values its promises report and proposes its own (or a no-op) in "
                       "slots where an acceptor had already accepted a value",
    # The acceptor's promise is stable storage ("Paxos Made Simple", section 2.3: an acceptor must
    # remember what it promised even if it fails and restarts). Forgotten, a restarted acceptor
    # accepts a deposed leader's lower ballot again, and its own next ballot may repeat an old one.
    "promise-not-persisted": "an acceptor keeps its promise in memory only: after a restart it has promised nothing "
                             "and accepts any ballot again (its status term drops to 0)",
    # A lease read is safe only while the acks of a quorum are younger than the time acceptors
    # refuse other proposers (Paxos Made Live's master lease; raftkv's lease-no-checkquorum is the
    # Raft form). Here the leader takes its lease for granted.
    "stale-lease-read": "lease reads are served by a leader that no longer has a quorum (implies lease reads; the "
                        "lease is never checked against the acceptors' answers and the leader does not step down "
                        "when it hears no quorum)",
}


@dataclass(frozen=True)
class PaxosNodeConfig(NodeConfig):
    """raftkv's NodeConfig, with paxoskv's bugs (election_timeout is the randomized takeover timeout)."""

    KNOWN_BUGS = BUGS
    LEASE_BUGS = frozenset({"stale-lease-read"})


class PaxosKVNode(RaftKVNode):
    core_class = PaxosCore
    message_types = m.ALL_TYPES
    core: PaxosCore

    def metrics(self) -> dict:
        """raftkv's counters (elections_started counts phase-1 rounds), plus the ballot and the promise."""
        out = super().metrics()
        out["ballot"] = self.core.ballot
        out["promised"] = self.core.promised
        out.pop("prevotes_started", None)
        out.pop("transfers_started", None)
        return out


__all__ = ["BUGS", "PaxosKVNode", "PaxosNodeConfig", "Ready", "Restored"]
