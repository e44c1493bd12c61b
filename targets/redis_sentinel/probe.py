"""What a node believes: its server's replication role (ROLE), and its Sentinel's view (SENTINEL MASTER), as the observer's shape.

Two questions per probe, one connection each, in RESP2 (a few lines of the
protocol below, so the probe, asked every 50 ms per node, costs one short
exchange and no client library):

- the server: `ROLE` (master with its replication offset and replicas, or
  slave with the primary it follows and its link state) and `TIME` (the
  server's clock, for the clock nemesis), pipelined;
- the Sentinel on the same node: `SENTINEL MASTER mymaster`, the primary it
  names (ip, port), its flags (s_down, o_down, failover_in_progress) and
  `config-epoch`, the epoch of the configuration it believes current.

Mapped onto the split-brain checker's shape:

- role: `leader` for a server whose ROLE is master, `follower` for a replica.
  The server's own answer, not the Sentinel's: a primary that is cut off, or
  that came back from a kill before Sentinel demoted it, still says master
  and still takes writes from whoever reaches it, which is the point.
- leader: the node the node's own Sentinel names as primary (what a client
  co-located with it is told); if that Sentinel did not answer, the primary
  a replica follows.
- term: the Sentinel config epoch under which the node became primary. A
  master whose own Sentinel names it reports that Sentinel's config-epoch (0
  for n1 at the start: nobody promoted it); the plugin remembers it, so a
  master whose Sentinel has moved on (it learnt of a newer failover) keeps
  reporting the epoch it was promoted in until it is demoted: an isolated old
  primary is a leader of an older term, overlapping the new one. A master
  never seen named by its own Sentinel has no known term (None). A replica
  reports its Sentinel's config-epoch (None if it did not answer).
- commit_index: none. Redis has no commit: a write is acknowledged before it
  is replicated, and the replication offset (reported as `repl_offset`) of a
  demoted primary goes back when it resyncs from the new one.

Pure functions of the answers; targets.redis_sentinel.plugin asks.
"""

from __future__ import annotations

from typing import Any


class RespError(str):
    """An error reply (-ERR ..., -READONLY ...): its text."""


class Incomplete(Exception):
    """More bytes are needed for a whole reply."""


def encode(*args: Any) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def parse(data: bytes, pos: int = 0) -> tuple[Any, int]:
    """One RESP2 reply from data[pos:]: (value, position after it); Incomplete if it is not all there.
    Bulk strings come back as str (replacing bad UTF-8), errors as RespError, nil as None."""
    end = data.find(b"\r\n", pos)
    if end < 0:
        raise Incomplete
    kind, line = data[pos:pos + 1], data[pos + 1:end].decode("utf-8", "replace")
    pos = end + 2
    if kind == b"+":
        return line, pos
    if kind == b"-":
        return RespError(line), pos
    if kind == b":":
        return int(line), pos
    if kind == b"$":
        n = int(line)
        if n < 0:
            return None, pos
        if len(data) < pos + n + 2:
            raise Incomplete
        return data[pos:pos + n].decode("utf-8", "replace"), pos + n + 2
    if kind == b"*":
        n = int(line)
        if n < 0:
            return None, pos
        items = []
        for _ in range(n):
            item, pos = parse(data, pos)
            items.append(item)
        return items, pos
    raise ValueError(f"not a RESP2 reply: {data[pos - len(line) - 3:pos][:40]!r}")


def parse_all(data: bytes, count: int) -> list[Any]:
    """count whole replies from data; Incomplete until they are all there."""
    out, pos = [], 0
    for _ in range(count):
        value, pos = parse(data, pos)
        out.append(value)
    return out


def parse_role(reply: Any) -> dict[str, Any] | None:
    """ROLE's answer as {"role": master|slave, ...}; None for anything else (an error, a Sentinel)."""
    if not isinstance(reply, list) or not reply or reply[0] not in ("master", "slave"):
        return None
    if reply[0] == "master":
        replicas = [r[0] for r in reply[2] if isinstance(r, list) and r] if len(reply) > 2 else []
        return {"role": "master", "offset": reply[1] if len(reply) > 1 else None, "replicas": replicas}
    # slave: [slave, master ip, master port, state (connect/connecting/sync/connected), offset]
    return {"role": "slave", "master_ip": reply[1] if len(reply) > 1 else None,
            "link": reply[3] if len(reply) > 3 else None, "offset": reply[4] if len(reply) > 4 else None}


def parse_sentinel_master(reply: Any) -> dict[str, str] | None:
    """SENTINEL MASTER's flat [key, value, ...] list as a dict; None for an error or no answer."""
    if not isinstance(reply, list) or len(reply) % 2:
        return None
    return {str(reply[i]): str(reply[i + 1]) for i in range(0, len(reply), 2)}


def config_epoch(master: dict[str, str] | None) -> int | None:
    try:
        return int(master["config-epoch"]) if master else None
    except (KeyError, ValueError):
        return None


def parse_time(reply: Any) -> float | None:
    """TIME's [seconds, microseconds] as seconds since the epoch on the server's clock."""
    try:
        return int(reply[0]) + int(reply[1]) / 1e6
    except (TypeError, ValueError, IndexError):
        return None


def status_view(role: dict[str, Any] | None, master: dict[str, str] | None, by_ip: dict[str, str],
                me: str | None, promoted_epoch: int | None) -> dict[str, Any] | None:
    """The observer's view from parse_role and parse_sentinel_master (None: the server did not answer).

    by_ip maps an address to its node id; promoted_epoch is the epoch under
    which `me` was last seen named primary by its own Sentinel (the plugin
    keeps it: see the module docstring)."""
    if role is None:
        return None
    named = by_ip.get(master.get("ip", "")) if master else None
    epoch = config_epoch(master)
    flags = master.get("flags", "") if master else None
    if role["role"] == "master":
        term = epoch if named is not None and named == me else promoted_epoch
        leader = named if named is not None else me
        out_role = "leader"
    else:
        term = epoch
        leader = named if named is not None else by_ip.get(role.get("master_ip") or "")
        out_role = "follower"
    return {
        "role": out_role,
        "term": term,
        "leader": leader,
        "commit_index": None,
        "redis_role": role["role"],
        "replicates": by_ip.get(role.get("master_ip") or "") if role["role"] == "slave" else None,
        "link": role.get("link"),
        "repl_offset": role.get("offset"),
        "replicas": len(role.get("replicas") or []) if role["role"] == "master" else None,
        "sentinel_primary": named,
        "sentinel_epoch": epoch,
        "sentinel_flags": flags,
        # How many other Sentinels it knows (found through hello messages): below quorum - 1 it
        # cannot call the primary objectively down, so no failover can start (just after a start).
        "other_sentinels": _int(master.get("num-other-sentinels")) if master else None,
        # How many replicas it knows, learnt from the primary's INFO every 10 s: a Sentinel that knows
        # none when the primary dies aborts every failover (-failover-abort-no-good-slave).
        "known_replicas": _int(master.get("num-slaves")) if master else None,
    }


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def names_me(view: dict[str, Any] | None, me: str | None) -> int | None:
    """The epoch to remember for me: its Sentinel names it primary and it is a master; else None."""
    if view and view["redis_role"] == "master" and view["sentinel_primary"] == me and me is not None:
        return view["sentinel_epoch"]
    return None
