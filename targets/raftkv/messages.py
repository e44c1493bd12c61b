"""The raftkv peer messages: one JSON-able dict per message, "type" says which.

Every message carries "type", "src", "dst" and "term". The other fields:

- prevote / vote: "last_index", "last_term", "force" (a leadership transfer:
  bypasses the rule that a node which heard from a live leader ignores votes).
  For prevote, "term" is the term the sender would campaign in (its term + 1).
- prevote_resp / vote_resp: "granted".
- append: "prev_index", "prev_term", "entries", "commit", "seq". The leader's
  heartbeat is an append too; "seq" numbers the leader's heartbeat rounds so
  that ReadIndex and leases can tell which round a follower has answered.
- append_resp: "success", "match_index" (on success), "reject_index" (the
  prev_index refused), "conflict_index" and "conflict_term" (fast back-off
  hints; conflict_term is None when the follower's log is too short), "seq".
- snapshot: "snapshot" ({"index", "term", "state", "members", "config"}), "seq";
  answered with an append_resp.
- timeout_now: the leader asks the transfer target to campaign at once.
- forward: a follower hands a client request to the node it takes for the
  leader: "id" (unique to the sending node's incarnation), "op" (the request as
  the client sent it, plus a request_id for a write). Not Raft: the node
  handles it beside the core, and "term" is informational.
- forward_resp: what the leader answered: "id", "status", "body".

Log entries are {"index", "term", "kind", "data"}; kind is "noop" (each
leader's first entry of its term), "op" (data = {"op": client write}) or
"config" (data = {"voters", "learners"}: a membership change, membership.py).
A snapshot also carries "config", the configuration at its index.
"""

PREVOTE = "prevote"
PREVOTE_RESP = "prevote_resp"
VOTE = "vote"
VOTE_RESP = "vote_resp"
APPEND = "append"
APPEND_RESP = "append_resp"
SNAPSHOT = "snapshot"
TIMEOUT_NOW = "timeout_now"
FORWARD = "forward"
FORWARD_RESP = "forward_resp"

# The messages of the Raft core; FORWARDING ones are the node's own.
RAFT_TYPES = frozenset(
    {PREVOTE, PREVOTE_RESP, VOTE, VOTE_RESP, APPEND, APPEND_RESP, SNAPSHOT, TIMEOUT_NOW}
)
FORWARDING = frozenset({FORWARD, FORWARD_RESP})
ALL_TYPES = RAFT_TYPES | FORWARDING

# Messages only a leader of the message's term can send: they make the
# receiver recognise the sender as leader.
FROM_LEADER = frozenset({APPEND, SNAPSHOT, TIMEOUT_NOW})

NOOP = "noop"
OP = "op"
