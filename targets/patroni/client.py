"""The workload's client on PostgreSQL under Patroni: psycopg 3, the primary found as applications find it, honest outcomes.

Finding the primary: a client bound to node X connects with a multi-host
libpq connection string, X first and then every other node, and
`target_session_attrs=read-write`: libpq (psycopg tries the hosts in that
order) skips a host that does not answer and a server in recovery (a
replica), and settles on the first that takes writes. That is what an
application without a proxy does. A connection is kept and reused while it
works, so a client goes on writing to the primary it found until that
connection breaks (a demoted primary restarts PostgreSQL, which ends every
session), then finds the primary again. Nothing is retried: a statement sent
twice is two statements.

Operations (autocommit: one statement, one transaction; values are the JSON
text of the workload's value; the tables are made by post_bootstrap.sh):

- read: `SELECT value FROM registers WHERE key = $1` (no row: nil).
- write: `INSERT ... ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`.
- cas [from, to]: `UPDATE registers SET value = $to WHERE key = $1 AND value
  = $from`: one row updated is ok, none is a `fail` (cas-mismatch).
- add (set workload): `INSERT INTO set_elements ... ON CONFLICT DO NOTHING`;
  final read: `SELECT element FROM set_elements WHERE key = $1`.

Outcomes (docs: targets/patroni/README.md):

- fail, certainly not committed: no connection could be made (nothing was
  sent: refused, unreachable, no read-write server among the hosts, our
  timeout while connecting); the server answered the statement with an
  ERROR (read_only_sql_transaction, serialization_failure, deadlock, ...):
  PostgreSQL reports ERROR only for a transaction it rolled back, since once
  the commit record is written any error is a PANIC. A cas that matched no
  row. A read changes nothing, so a read that did not answer is `fail` too.
- info, may have been committed: the statement was sent and no answer came
  (the connection broke, our timeout), or the server ended the session with
  FATAL (admin_shutdown while a commit waited for its synchronous standby:
  PostgreSQL says then that "the transaction has already committed locally").
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import psycopg

from targets.base import SetReads
from targets.patroni import config

# PostgreSQL severities of an error that ends only the statement's transaction (rolled back).
ROLLED_BACK = ("ERROR",)
CONNECT_TIMEOUT_S = 2  # libpq's per-host connect_timeout; its minimum is 2 s (a lower one is raised to 2)


# psycopg logs a warning for each statement given up on ("query cancellation interrupted"); with no
# handler of the application's own, Python would print each to stderr through the run's progress.
# Dropped here unless the application configures logging.
logging.getLogger("psycopg").addHandler(logging.NullHandler())


def outcome(kind: str, value: Any = None, error: str | None = None) -> dict[str, Any]:
    return {"type": kind, "value": value, "error": error}


def describe(e: BaseException) -> str:
    sqlstate = getattr(e, "sqlstate", None)
    text = " ".join(str(e).split())
    return (f"{type(e).__name__}" + (f" {sqlstate}" if sqlstate else "") + (f": {text}" if text else ""))[:200]


def encode(value: Any) -> str:
    return json.dumps(value)


def decode(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # written by someone else (psql): shown as text


def severity(e: BaseException) -> str | None:
    """The server's severity of an error it sent (ERROR, FATAL, PANIC); None for one raised by the client."""
    diag = getattr(e, "diag", None)
    return getattr(diag, "severity_nonlocalized", None) or getattr(diag, "severity", None) if diag else None


def classify_error(f: str, e: BaseException, sent: bool) -> dict[str, Any]:
    """The outcome of an operation that ended in e, given whether its statement may have reached the server."""
    if f in ("read", "read-set") or not sent:
        return outcome("fail", None, describe(e))
    if isinstance(e, psycopg.Error) and e.sqlstate and severity(e) in ROLLED_BACK:
        return outcome("fail", None, describe(e))
    return outcome("info", None, describe(e))


def conninfo(addresses: dict[str, str], first: str, timeout_s: int = CONNECT_TIMEOUT_S) -> str:
    """The multi-host connection string of a client bound to `first`: that node, then the others in order."""
    order = [first] + [n for n in addresses if n != first]
    hosts = [addresses[n].rpartition(":") for n in order]
    return psycopg.conninfo.make_conninfo(
        host=",".join(h for h, _, _ in hosts), port=",".join(p for _, _, p in hosts),
        dbname=config.DATABASE, user=config.CLIENT_USER[0], password=config.CLIENT_USER[1],
        target_session_attrs="read-write", connect_timeout=str(timeout_s), application_name="splitbrain")


def statement(f: str, key: Any, value: Any) -> tuple[str, tuple]:
    """The SQL and parameters of one operation (ValueError for an operation we do not know)."""
    key = str(key)
    if f == "read":
        return "SELECT value FROM registers WHERE key = %s", (key,)
    if f == "write":
        return ("INSERT INTO registers (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", (key, encode(value)))
    if f == "cas":
        frm, to = value
        return "UPDATE registers SET value = %s WHERE key = %s AND value = %s", (encode(to), key, encode(frm))
    if f == "add":
        return ("INSERT INTO set_elements (key, element) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (key, encode(value)))
    if f == "read-set":
        return "SELECT element FROM set_elements WHERE key = %s", (key,)
    raise ValueError(f"unknown operation {f!r}")


def result(f: str, value: Any, rowcount: int, rows: list[tuple]) -> dict[str, Any]:
    """The outcome of a statement the server answered without error."""
    if f == "read":
        return outcome("ok", decode(rows[0][0]) if rows else None)
    if f == "read-set":
        return outcome("ok", sorted((decode(r[0]) for r in rows), key=lambda v: (str(type(v)), v)))
    if f == "cas" and rowcount != 1:
        return outcome("fail", None, "cas-mismatch")
    return outcome("ok", value)


class PatroniClient:
    """Workload operations on the cluster's primary: registers (read/write/cas), a set (add, read)."""

    def __init__(self, addresses: dict[str, str], timeout: float = 1.0, connect=None):
        self.addresses = dict(addresses)
        self.timeout = timeout
        self._connect = connect or psycopg.AsyncConnection.connect  # a fake in tests
        self._idle: dict[str, list] = {}  # node -> connections not in use, found through that node's string
        self._reads = SetReads()
        self._by_host = {address.rpartition(":")[0]: n for n, address in self.addresses.items()}

    def _served_by(self, conn) -> dict[str, str]:
        """{"node": the node the connection landed on}, for the completion: libpq picks the read-write
        server among the hosts, so the node the client is bound to is not the one that acknowledged
        (the split-brain checker must see what each primary acknowledged). {} if unknown."""
        host = getattr(getattr(conn, "info", None), "host", None)
        node = self._by_host.get(host) if isinstance(host, str) else None
        return {"node": node} if node else {}

    async def _connection(self, node_id: str):
        idle = self._idle.setdefault(node_id, [])
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return await self._connect(conninfo(self.addresses, node_id), autocommit=True)

    async def invoke(self, node_id: str, op: dict[str, Any]) -> dict[str, Any]:
        f, key, value = self._reads.kind(op), op.get("key"), op.get("value")
        try:
            sql, params = statement(f, key, value)
        except ValueError as e:
            return outcome("fail", None, str(e))
        conn, sent = None, False
        try:
            async with asyncio.timeout(self.timeout):
                conn = await self._connection(node_id)
                sent = True
                cur = await conn.execute(sql, params)
                rows = await cur.fetchall() if cur.description else []
                answer = result(f, value, cur.rowcount, rows)
        except TimeoutError:
            served = self._served_by(conn) if conn is not None else {}
            await self._discard(conn)
            return classify_error(f, TimeoutError("timeout"), sent) | {"error": "timeout"} | served
        except psycopg.Error as e:
            served = self._served_by(conn) if conn is not None else {}
            await self._discard(conn)
            return classify_error(f, e, sent) | served
        self._idle.setdefault(node_id, []).append(conn)
        return answer | self._served_by(conn)

    async def _discard(self, conn) -> None:
        """A connection whose state is unknown (an error, a statement given up on) is not used again."""
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # closing what is already broken: nothing left to do
                pass

    async def close(self) -> None:
        conns = [c for idle in self._idle.values() for c in idle]
        self._idle = {}
        for c in conns:
            await self._discard(c)
