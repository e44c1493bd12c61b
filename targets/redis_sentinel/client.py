"""The workload's client on Redis Sentinel: ask the Sentinel beside the node for the primary, then send the operation there.

A client bound to node X is an application server co-located with X's
Sentinel (Jepsen's setup): before every operation it asks that Sentinel
`SENTINEL MASTERS` (redis-py's `Sentinel.discover_master`, which also
refuses a primary the Sentinel flags down) for the primary's address and
sends the operation to that server. Asking every time is the freshest
discovery an application can have (redis-py's SentinelConnectionPool asks
when it opens a connection and again after a READONLY): whatever is lost is
lost by Sentinel's view, not by a stale cache. A Sentinel cut off with the
old primary keeps naming it, so its clients keep writing there; that is how
acknowledged writes get lost and two primaries serve at once.

The completion says which node served the operation ("node": the primary
the Sentinel named), so the split-brain checker sees what each primary
acknowledged; the invoke keeps the node the client is bound to.

The final read of a set (`SMEMBERS` after the heal) goes to the primary a
majority of the Sentinels name with none of the answering ones naming
another: right after a heal the old primary's Sentinel still names it for
a hello period or two, and a read from a primary about to be demoted would
report the new primary's writes as lost.

Operations (keys `kv:KEY`, `set:KEY`; values are the JSON of the workload's):

- read: GET; write: SET; cas [from, to]: one EVAL of CAS_SCRIPT, which
  compares and sets atomically (a missing register reads as null) and
  returns 1, or 0 when the compare failed;
- add: SADD; the final set read: SMEMBERS.

Outcomes (nothing is retried: redis-py's retries are off, a write sent twice
is two writes):

- ok: the server answered (a cas only with 1).
- fail, certainly not applied: no primary to send to (the Sentinel did not
  answer or named none, or flags it down); the connection to the primary
  could not be opened (nothing was sent); an error reply Redis gives only
  for a command it did not run (READONLY: the server is a replica;
  NOREPLICAS: min-replicas-to-write not met; LOADING, MASTERDOWN, OOM,
  BUSY, NOSCRIPT, WRONGTYPE, MISCONF, NOAUTH, NOPERM); a cas whose compare
  failed. A read changes nothing, so a read that did not answer is fail.
- info, may have happened: the connection dropped or timed out after the
  command was sent, the client's own timeout after sending, any other error
  reply.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

from redis.asyncio import ConnectionPool
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from targets.base import SetReads
from targets.redis_sentinel.deploy import MASTER_NAME, REDIS_PORT, SENTINEL_PORT

REGISTER_PREFIX = "kv:"
SET_PREFIX = "set:"

# Compare and set in one step (a script runs atomically): 1 if it set, 0 if the register held another value.
CAS_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current == false then current = 'null' end
if current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# Error replies Redis sends only for a command it did not execute (checked before it runs).
NOT_APPLIED_CODES = frozenset({"READONLY", "NOREPLICAS", "LOADING", "MASTERDOWN", "OOM", "BUSY", "NOSCRIPT",
                               "WRONGTYPE", "MISCONF", "NOAUTH", "NOPERM", "EXECABORT"})

NO_RETRY = Retry(NoBackoff(), 0)
# RESP2, which every Redis speaks, whatever redis-py's default (RESP3 since 8.0): no HELLO, and the
# same replies whichever redis-py is installed.
PROTOCOL = 2


def outcome(kind: str, value: Any = None, error: str | None = None, node: str | None = None) -> dict[str, Any]:
    out = {"type": kind, "value": value, "error": error}
    if node is not None:
        out["node"] = node
    return out


def describe(e: BaseException) -> str:
    text = str(e)
    code = getattr(e, "status_code", None)
    if code and not text.startswith(code):
        text = f"{code} {text}"
    return (f"{type(e).__name__}: {text}" if text else type(e).__name__)[:200]


def error_code(e: BaseException) -> str | None:
    """The error reply's code (READONLY, NOREPLICAS, ERR...): redis-py strips the ones it knows into status_code."""
    code = getattr(e, "status_code", None)
    if code:
        return str(code)
    first = str(e).split(" ", 1)[0]
    return first if first.isupper() else None


def is_read(f: str) -> bool:
    return f in ("read", "read-set")


def classify_error(f: str, e: BaseException, sent: bool) -> dict[str, Any]:
    """The outcome of an operation that ended in e, given whether its command may have reached the server."""
    if not sent or is_read(f):
        return outcome("fail", None, describe(e))
    # An error reply (redis-py raises LOADING as a ConnectionError, with its code in status_code).
    if error_code(e) in NOT_APPLIED_CODES:
        return outcome("fail", None, describe(e))
    return outcome("info", None, describe(e))


def encode(value: Any) -> str:
    return json.dumps(value)


def decode(text: Any) -> Any:
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text  # written by someone else (redis-cli): shown as text


def command(f: str, key: Any, value: Any) -> tuple[Any, ...]:
    if f == "read":
        return ("GET", REGISTER_PREFIX + str(key))
    if f == "write":
        return ("SET", REGISTER_PREFIX + str(key), encode(value))
    if f == "cas":
        frm, to = value
        return ("EVAL", CAS_SCRIPT, 1, REGISTER_PREFIX + str(key), encode(frm), encode(to))
    if f == "add":
        return ("SADD", SET_PREFIX + str(key), encode(value))
    if f == "read-set":
        return ("SMEMBERS", SET_PREFIX + str(key))
    raise ValueError(f"unknown operation {f!r}")


def answered(f: str, value: Any, reply: Any, node: str | None) -> dict[str, Any]:
    """The outcome of a command the server answered without an error."""
    if f == "read":
        return outcome("ok", decode(reply), node=node)
    if f == "read-set":
        elements = (decode(v) for v in reply or [])
        return outcome("ok", sorted(elements, key=lambda v: (str(type(v)), v)), node=node)
    if f == "cas":
        if reply == 1:
            return outcome("ok", value, node=node)
        return outcome("fail", None, "cas-mismatch", node=node)
    return outcome("ok", value, node=node)


def agreed_primary(named: list[tuple[str, int] | None], total: int) -> tuple[str, int] | None:
    """The primary a majority of all `total` Sentinels name with no answering Sentinel naming another."""
    answers = [n for n in named if n is not None]
    counts = Counter(answers)
    if len(counts) != 1:
        return None
    (primary, votes), = counts.items()
    return primary if votes > total // 2 else None


class RedisSentinelClient:
    """Workload operations through Sentinel-discovered primaries: registers (read/write/cas), a set (add, read)."""

    def __init__(self, addresses: dict[str, str], timeout: float = 1.0, sentinel_port: int = SENTINEL_PORT):
        self.addresses = dict(addresses)
        self.timeout = timeout
        self.sentinel_port = sentinel_port
        self.by_ip = {a.rpartition(":")[0]: n for n, a in self.addresses.items()}
        # Made on first use, in the run's event loop.
        self._sentinels: dict[str, Sentinel] = {}
        self._pools: dict[tuple[str, int], ConnectionPool] = {}
        self._reads = SetReads()

    def _sentinel(self, node_id: str) -> Sentinel:
        s = self._sentinels.get(node_id)
        if s is None:
            ip = self.addresses[node_id].rpartition(":")[0]
            limits = {"socket_timeout": self.timeout, "socket_connect_timeout": self.timeout / 2,
                      "retry": NO_RETRY, "protocol": PROTOCOL}
            s = Sentinel([(ip, self.sentinel_port)], sentinel_kwargs=limits)
            self._sentinels[node_id] = s
        return s

    def _pool(self, address: tuple[str, int]) -> ConnectionPool:
        pool = self._pools.get(address)
        if pool is None:
            pool = ConnectionPool(host=address[0], port=address[1], socket_timeout=self.timeout,
                                  socket_connect_timeout=self.timeout / 2, retry=NO_RETRY,
                                  max_connections=64, protocol=PROTOCOL)
            self._pools[address] = pool
        return pool

    async def _named(self, node_id: str) -> tuple[str, int] | None:
        try:
            ip, port = await self._sentinel(node_id).discover_master(MASTER_NAME)
            return str(ip), int(port)
        except (MasterNotFoundError, RedisError, OSError):
            return None

    async def primary(self, node_id: str, f: str) -> tuple[str, int]:
        """The primary to send to: the one node_id's Sentinel names (a final set read: the agreed one)."""
        if f == "read-set":
            named = await asyncio.gather(*(self._named(n) for n in self.addresses))
            agreed = agreed_primary(list(named), len(self.addresses))
            if agreed is None:
                raise MasterNotFoundError(f"the Sentinels do not agree on a primary yet: {named}")
            return agreed
        ip, port = await self._sentinel(node_id).discover_master(MASTER_NAME)
        return str(ip), int(port or REDIS_PORT)

    async def invoke(self, node_id: str, op: dict[str, Any]) -> dict[str, Any]:
        f, key, value = self._reads.kind(op), op.get("key"), op.get("value")
        try:
            args = command(f, key, value)
        except ValueError as e:
            return outcome("fail", None, str(e))
        sent = False
        served = None
        try:
            async with asyncio.timeout(self.timeout):
                address = await self.primary(node_id, f)
                served = self.by_ip.get(address[0])
                pool = self._pool(address)
                conn = await pool.get_connection()  # connects, or raises: nothing was sent
                try:
                    sent = True
                    await conn.send_command(*args)
                    reply = await conn.read_response()
                except ResponseError:
                    await pool.release(conn)  # an error reply: the connection is fine
                    raise
                except BaseException:
                    # Dropped, timed out or cancelled mid-command: the connection's state is unknown.
                    await conn.disconnect()
                    await pool.release(conn)
                    raise
                await pool.release(conn)
        except TimeoutError:
            return classify_error(f, TimeoutError("timeout"), sent) | ({"node": served} if sent and served else {})
        except (RedisError, OSError) as e:
            out = classify_error(f, e, sent)
            return out | ({"node": served} if sent and served else {})
        return answered(f, value, reply, served)

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        sentinels, self._sentinels = list(self._sentinels.values()), {}
        for pool in pools:
            try:
                await pool.disconnect()
            except Exception:  # closing what is already broken: nothing left to do
                pass
        for s in sentinels:
            for conn in s.sentinels:
                try:
                    await conn.aclose()
                except Exception:
                    pass
