"""What a ZooKeeper server believes, from its AdminServer's JSON: role, the leader it follows, the ZAB epoch.

Two commands of the AdminServer (Jetty on ADMIN_PORT, `GET /commands/NAME`):

- `srvr` (server_stats): `server_state` (leader, follower, observer) and
  `last_processed_zxid`, both read from the running server in one answer.
- `leader`: `is_leader` and `leader_id`, the myid of the leader this server
  follows. This is the only place a follower says whom it follows: neither
  the four-letter `srvr` nor `mntr` names the leader.

A server that is not serving (electing, or syncing with a new leader)
answers each with an `error` ("This ZooKeeper instance is not currently
serving requests"): it is `looking`, with no leader and no epoch.

The term is the ZAB epoch, the high 32 bits of the zxid, so the split-brain
checker's rule (two leaders of one term) reads "two leaders of one epoch".
A new leader sets its last processed zxid to (its epoch, 0) as it starts
serving (Leader.startZkServer), so it reports its own epoch from its first
answer, never its predecessor's; a follower reports the epoch of the last
transaction it applied. The commit index is the whole zxid: a server applies
only committed transactions and answers only once it is in sync with a
leader, so the zxid it reports never goes back, across epochs and restarts
(the low 32 bits alone restart at 0 in every epoch).

Pure functions of the parsed answers; targets.zookeeper.plugin asks for them.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Any

ROLES = {"leader": "leader", "follower": "follower", "observer": "observer",
         "standalone": "leader"}  # standalone: the only server orders every write (not used by our ensembles)


def epoch(zxid: int) -> int:
    return zxid >> 32


def counter(zxid: int) -> int:
    return zxid & 0xFFFFFFFF


def _zxid(value: Any) -> int | None:
    """A zxid as the AdminServer writes it: a JSON number (a hex string in some commands)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value, 16) if value.lower().startswith("0x") else int(value)
        except ValueError:
            return None
    return None


def serving(answer: Any) -> bool:
    """Did the command run (a server that is not serving answers with an error)?"""
    return isinstance(answer, dict) and not answer.get("error")


LOOKING = {"role": "looking", "term": None, "leader": None, "commit_index": None}


def status_view(srvr: Any, leader: Any, names: dict[int, str], me: str | None = None) -> dict[str, Any] | None:
    """The observer's view from the two answers (None: not ZooKeeper's answer).

    names maps myid -> node id; me is the node asked: a leader whose `leader`
    answer was lost (it lost the lead in between) still leads itself."""
    if not isinstance(srvr, dict) or srvr.get("command") not in ("srvr", "server_stats"):
        return None
    if not serving(srvr):
        return dict(LOOKING)
    stats = srvr.get("server_stats")
    stats = stats if isinstance(stats, dict) else {}
    state = str(stats.get("server_state") or "")
    zxid = _zxid(stats.get("last_processed_zxid"))
    role = ROLES.get(state, state or "looking")
    leader_id = leader.get("leader_id") if serving(leader) else None
    if isinstance(leader_id, bool) or not isinstance(leader_id, int) or leader_id < 0:
        leader_id = None
    view = {
        "role": role,
        "term": epoch(zxid) if zxid is not None else None,
        "leader": names.get(leader_id) if leader_id is not None else None,
        "commit_index": zxid,
        "zxid": f"0x{zxid:x}" if zxid is not None else None,
        "server_state": state,
        "leader_myid": leader_id,
    }
    if role == "leader" and view["leader"] is None:
        view["leader"] = me
    return view


def wall_time(date_header: str | None) -> float | None:
    """Seconds since the epoch on the server's clock, from Jetty's Date header (whole seconds: +0.5 s)."""
    if not date_header:
        return None
    try:
        return parsedate_to_datetime(date_header).timestamp() + 0.5
    except (TypeError, ValueError):
        return None
