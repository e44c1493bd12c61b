"""What a ZooKeeper server believes: its mode and zxid (four-letter `srvr`), the leader it follows (AdminServer), the ZAB epoch.

Three questions, asked together:

- `srvr`, the four-letter word on the client port: `Mode:` (leader,
  follower, observer) and `Zxid:`, the last transaction the server applied,
  both read from the running server in one answer. It is cheap (one short
  TCP exchange with ZooKeeper's own NIO server) and answers from the moment
  the client port is open, before the election.
- `GET /commands/leader` of the AdminServer (Jetty, JSON): `leader_id`, the
  myid of the leader this server follows. This is the only place a follower
  says whom it follows: neither `srvr` nor `mntr` names the leader.
- `GET /currentEpoch` of a file server beside ZooKeeper on the node
  (node.sh): the data dir's `version-2/currentEpoch`, the epoch the server
  last accepted as current. ZooKeeper writes it as a follower syncs with a
  new leader (NEWLEADER) and as a leader begins its epoch, before either
  serves in it, and keeps it across restarts.

A server that is not serving (electing, or syncing with a new leader)
answers both with "This ZooKeeper instance is not currently serving
requests": it is `looking`, with no leader and no epoch.

The term is the ZAB epoch, so the split-brain checker's rule (two leaders
of one term) reads "two leaders of one epoch": the server's currentEpoch,
like a Raft node's current term. The epoch of the zxid (its high 32 bits)
is not enough: a follower's zxid is the last transaction it applied, so
after an election with no write it still names the old epoch (measured:
follower at 0x100000000 beside a leader at 0x200000000, both with
currentEpoch 2), and a cluster would never look settled. When the file
server does not answer, the zxid's epoch stands in.

The commit index is the whole zxid: a server applies only committed
transactions and answers only once it is in sync with a leader, so the zxid
it reports never goes back, across epochs and restarts (the low 32 bits
alone restart at 0 in every epoch). A zxid of (epoch, 0) is no
transaction: a new leader sets it as it starts serving
(Leader.startZkServer), and a follower that synced by snapshot takes it
over, while one that synced by diff keeps its last real one. Such a server
reports no commit index until the epoch's first transaction; otherwise
three servers that agree on everything would look out of step (measured:
0x0, 0x100000000 and 0x100000000 after an election with no write).

Pure functions of the answers; targets.zookeeper.plugin asks the questions.
"""

from __future__ import annotations

from typing import Any

from targets.http_date import wall_time  # noqa: F401  (the probe answers with it)

NOT_SERVING = "not currently serving requests"
ROLES = {"leader": "leader", "follower": "follower", "observer": "observer",
         "standalone": "leader"}  # standalone: the only server orders every write (not used by our ensembles)
LOOKING = {"role": "looking", "term": None, "leader": None, "commit_index": None}


def epoch(zxid: int) -> int:
    return zxid >> 32


def counter(zxid: int) -> int:
    return zxid & 0xFFFFFFFF


def parse_srvr(text: str) -> dict[str, str] | None:
    """`srvr`'s "Key: value" lines; {} for a server that is not serving; None for anything else."""
    if NOT_SERVING in text:
        return {}
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields if "Mode" in fields else None


def leader_myid(answer: Any) -> int | None:
    """The myid in the AdminServer's `leader` answer, None if it has none (not serving, not answered)."""
    if not isinstance(answer, dict) or answer.get("error"):
        return None
    value = answer.get("leader_id")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def parse_epoch_file(text: str) -> int | None:
    """currentEpoch's content (a decimal number and a newline), None for anything else."""
    text = text.strip()
    return int(text) if text.isdigit() and len(text) <= 10 else None


def status_view(srvr: dict[str, str] | None, leader_id: int | None, names: dict[int, str],
                me: str | None = None, current_epoch: int | None = None) -> dict[str, Any] | None:
    """The observer's view from parse_srvr's fields, the leader's myid and the server's currentEpoch
    (None: not ZooKeeper's answer).

    names maps myid -> node id; me is the node asked: a leader whose `leader`
    answer is missing (Jetty slow or still starting) leads itself."""
    if srvr is None:
        return None
    if not srvr:
        return dict(LOOKING)
    mode = srvr.get("Mode", "")
    try:
        zxid = int(srvr.get("Zxid", ""), 16)
    except ValueError:
        zxid = None
    role = ROLES.get(mode, mode or "looking")
    leader = names.get(leader_id) if leader_id is not None else None
    if role == "leader" and leader is None:
        leader = me
    term = current_epoch if current_epoch is not None else epoch(zxid) if zxid is not None else None
    commit = zxid
    if zxid is not None and counter(zxid) == 0:
        commit = None  # the start of an epoch, not a transaction
    return {
        "role": role,
        "term": term,
        "leader": leader,
        "commit_index": commit,
        "zxid": f"0x{zxid:x}" if zxid is not None else None,
        "mode": mode,
        "leader_myid": leader_id,
    }
