"""The paxoskv peer messages: one JSON-able dict per message, "type" says which.

Every message carries "type", "src", "dst", "term" (the sender's promised
ballot, informational) and, for the Paxos ones, "ballot":

- prepare (phase 1a): "ballot", "from_slot" (the candidate's commit index + 1:
  the first slot it needs to hear about).
- promise (phase 1b): "ballot" (the one asked about), "granted". Granted, it
  carries the acceptor's state from from_slot on: "entries" (every value it
  has accepted there, each with the ballot it was accepted in), "commit" and
  "snapshot" (when from_slot is below its snapshot, else None). Refused, it
  carries "promised" (the acceptor's higher promise, or its leader's ballot
  while it still honours the leader's lease) and "leader".
- accept (phase 2a, and the heartbeat): "ballot", "lo" (the slot of its first
  entry; for a heartbeat, the next slot the leader would send), "entries"
  (consecutive slots from lo), "commit" (the leader's chosen prefix), "seq"
  (the heartbeat round, for reads and leases as in raftkv).
- install: the leader's "snapshot" for an acceptor whose next slot it has
  compacted away, "ballot", "seq"; answered with accepted.
- accepted (phase 2b): "ballot", "ok" (False: refused, with "promised"),
  "match" (the last slot of the acceptor's run of slots accepted in this
  ballot above its commit index, or its commit index), "gap" (the message did
  not join that run: the leader resends from match + 1), "seq".
- forward / forward_resp: raftkv's (targets/raftkv/messages.py), unchanged.

Slot entries are {"index", "term", "ballot", "kind", "data"}: "index" is the
slot, "term" the ballot of the proposer that first proposed this value there
(it stays when a later leader re-proposes it, so the node can tell its own
write from another's, as raftkv does with an entry's term), "ballot" the
ballot it was last accepted in. kind is "noop" (a gap a new leader filled) or
"op" (data = {"op": client write}).
"""

from targets.raftkv.messages import FORWARD, FORWARD_RESP, FORWARDING, NOOP, OP

PREPARE = "prepare"
PROMISE = "promise"
ACCEPT = "accept"
ACCEPTED = "accepted"
INSTALL = "install"

PAXOS_TYPES = frozenset({PREPARE, PROMISE, ACCEPT, ACCEPTED, INSTALL})
ALL_TYPES = PAXOS_TYPES | FORWARDING

__all__ = ["ACCEPT", "ACCEPTED", "ALL_TYPES", "FORWARD", "FORWARDING", "FORWARD_RESP", "INSTALL", "NOOP",
           "OP", "PAXOS_TYPES", "PREPARE", "PROMISE"]
