"""What a Patroni node believes: its own view (`GET /patroni`) and the cluster's as the DCS has it (`GET /cluster`).

Two questions to Patroni's REST API (port 8008), asked together:

- `/patroni`: this node's Patroni state (`running`, `starting`, `stopped`,
  `creating replica`, ...), the PostgreSQL role it found (`master` for a
  primary, `replica`), the timeline and the WAL position. Patroni answers 200
  for a running primary and 503 otherwise, with the same JSON either way.
- `/cluster`: the members as this node last read them from etcd, the one
  holding the leader key with role `leader`. That is the leader "named in the
  DCS"; a node cut off from etcd keeps showing its last read.

Mapping to what the split-brain checker reads:

- role `leader`: PostgreSQL runs as a primary (`master`/`primary`, or a
  standby cluster's `standby_leader`) and Patroni says `running`, i.e. it
  takes writes now. This is PostgreSQL's own state, not the DCS's: an
  isolated primary that has not yet demoted itself is a leader here, which is
  exactly what the checker must see to find two primaries serving at once.
  `follower`: a running replica. Anything else is Patroni's state
  (`starting`, `stopped`, `creating replica`, ...).
- term: the PostgreSQL timeline. Patroni's `/patroni` gives it for a primary
  only (a replica's is null); a replica's is its own member entry's in
  `/cluster` (the timeline it streams, which it writes to its member key),
  found by its address. Every promotion starts a new one, so two
  primaries of one timeline would be a real anomaly, and an old primary on
  its old timeline beside a new one is the dual-serving the checker measures
  through the client's acknowledgements.
- leader: the member named leader in `/cluster`; None when there is none (the
  key expired, or no answer).
- No commit index: the WAL position (`lsn`, kept for the report) of a former
  primary goes back when pg_rewind makes it a replica of the new timeline,
  which the checker would read as a node that lost persisted state.

Pure functions of the answers (tests/test_patroni.py feeds them ones captured
from real nodes); targets.patroni.plugin asks the questions.
"""

from __future__ import annotations

from typing import Any

from targets.http_date import wall_time  # noqa: F401  (the probe answers with it)

PRIMARY_ROLES = ("master", "primary", "standby_leader")
REPLICA_ROLES = ("replica", "standby")
LEADER_ROLES = ("leader", "standby_leader")  # roles in /cluster of the member holding the leader key
# A node whose PostgreSQL has never been made, in a cluster with no primary yet (initdb not done):
# reported as not answering, so a cluster is "up" (harness.cluster waits for every probe) once it
# has its first primary. A replica still being copied from it answers (role "creating replica"):
# waiting for every basebackup too took over the run's 30 s start limit at load average 8-10.
UNINITIALIZED = "uninitialized"


def dcs_leader(cluster: Any) -> str | None:
    """The member /cluster names leader (it holds the leader key), None if none or no answer."""
    members = cluster.get("members") if isinstance(cluster, dict) else None
    for m in members if isinstance(members, list) else []:
        if isinstance(m, dict) and m.get("role") in LEADER_ROLES and isinstance(m.get("name"), str):
            return m["name"]
    return None


def role(node: dict[str, Any]) -> str:
    pg_role, state = node.get("role"), node.get("state")
    if state == "running" and pg_role in PRIMARY_ROLES:
        return "leader"
    if state == "running" and pg_role in REPLICA_ROLES:
        return "follower"
    return str(state or pg_role or "unknown")


def lsn(node: dict[str, Any]) -> int | None:
    """The primary's current WAL position, or the replica's replayed one (bytes)."""
    xlog = node.get("xlog") if isinstance(node.get("xlog"), dict) else {}
    value = xlog.get("location", xlog.get("replayed_location"))
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def member(cluster: Any, ip: str | None) -> dict[str, Any]:
    """This node's own entry in /cluster (by its address), {} if absent."""
    members = cluster.get("members") if isinstance(cluster, dict) else None
    for m in members if isinstance(members, list) else []:
        if isinstance(m, dict) and ip is not None and m.get("host") == ip:
            return m
    return {}


def status_view(node: Any, cluster: Any, ip: str | None = None) -> dict[str, Any] | None:
    """The observer's view from the /patroni and /cluster answers of the node at ip (None: /patroni did not
    answer in JSON, or neither it nor any other node has a PostgreSQL yet)."""
    if not isinstance(node, dict) or "state" not in node:
        return None
    if node.get("role") == UNINITIALIZED and dcs_leader(cluster) is None:
        return None
    timeline = _int(node.get("timeline"))
    if timeline is None and node.get("role") in REPLICA_ROLES:
        timeline = _int(member(cluster, ip).get("timeline"))
    return {
        "role": role(node),
        "term": timeline,
        "leader": dcs_leader(cluster),
        "commit_index": None,
        "lsn": lsn(node),
        "patroni_role": node.get("role"),
        "state": node.get("state"),
        "dcs_last_seen": node.get("dcs_last_seen"),
    }
