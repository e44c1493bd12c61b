"""The workload's client on ZooKeeper: one kazoo session per server, a register per znode, honest outcomes.

Each client slot of the harness gets its own session with each server it
talks to, connected to that server alone (kazoo with one host), as each
process of an application has its own session: ZooKeeper orders a session's
reads behind its pending writes, so one session shared by all clients would
hold every read on a cut-off server behind one unanswered write. A client
reads what the server it is bound to has applied:
ZooKeeper serves reads locally and promises them sequential consistency,
not linearizability. `reads: sync` sends a `sync` first, which has the server
catch up with the leader before the read. Nothing is retried: a write sent
twice is two writes.

Operations (znode names: docs in targets/zookeeper/README.md):

- read: `get /kv-KEY` (NoNode: the register is still nil).
- write: `set /kv-KEY` (any version); NoNode: `create` it; NodeExists
  (created meanwhile): `set` again.
- cas [from, to]: `get`, compare with from, then `set` with the version the
  get returned, in the same session: BadVersion means someone wrote in
  between, and nothing was written.
- add (set workload): `create /set-KEY/VALUE` (NoNode: create the parent
  first); final read: `get_children /set-KEY`.

Outcomes:

- fail: refused before anything was sent (no session to the server:
  it is down, cut off or not serving; kazoo refusing the call), or an error
  ZooKeeper returns only for a request it did not apply (BadVersion,
  NoNode, NodeExists, BadArguments...), or a cas whose get saw another
  value. A read changes nothing, so a read that did not answer is `fail`.
- info: a write sent and not answered: ConnectionLoss (the connection
  dropped with the request outstanding), SessionExpired, OperationTimeout,
  the client's own timeout, any other error.

kazoo is thread based: its `*_async` calls return an IAsyncResult, settled
on kazoo's threads; `_awaited` hands it to the event loop, so an operation
waits `timeout` for the answer without holding a thread, and a request given
up on is simply left to kazoo.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import quote, unquote

from kazoo.client import KazooClient
from kazoo.exceptions import (
    AuthFailedError,
    BadArgumentsError,
    BadVersionError,
    ConnectionClosedError,
    InvalidACLError,
    KazooException,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    SessionExpiredError,
    UnimplementedError,
)
from kazoo.retry import KazooRetry

from targets.base import SetReads

# Errors ZooKeeper answers only for a request it did not apply.
NOT_APPLIED = (BadVersionError, NoNodeError, NodeExistsError, BadArgumentsError, NoAuthError, InvalidACLError,
               NotEmptyError, NoChildrenForEphemeralsError, UnimplementedError)
# What kazoo raises, before queueing a request, when it has no session to send it on.
REFUSED = (ConnectionClosedError, SessionExpiredError, AuthFailedError)

# The session timeout we ask for; the server clamps it to [2, 20] ticks (0.4-4 s with the default
# 200 ms tick). kazoo pings every third of it and gives a silent server two thirds.
SESSION_TIMEOUT_S = 4.0
CONNECT_SHARE = 0.5  # an operation waits up to this share of its timeout for a session being made
# kazoo's reconnect backoff doubles up to an hour by default: after a 20 s outage a client would
# wait many seconds past the heal. Reconnect every 0.1-0.5 s, forever, as long as the client lives.
RECONNECT = {"max_tries": -1, "delay": 0.1, "backoff": 1.5, "max_delay": 0.5}

REGISTER_PREFIX = "/kv-"
SET_PREFIX = "/set-"

# kazoo logs every dropped connection as a warning; with no handler of the application's own,
# Python would print each to stderr through the run's progress. Handled (dropped) here unless the
# application configures logging.
LOG = logging.getLogger("targets.zookeeper.kazoo")
LOG.addHandler(logging.NullHandler())


def register_path(key: Any) -> str:
    return REGISTER_PREFIX + quote(str(key), safe="")


def set_path(key: Any) -> str:
    return SET_PREFIX + quote(str(key), safe="")


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def decode(data: bytes | None) -> Any:
    """A stored value: the JSON we wrote; an empty znode (made by someone else) is nil."""
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace")


def outcome(kind: str, value: Any = None, error: str | None = None) -> dict[str, Any]:
    return {"type": kind, "value": value, "error": error}


def describe(e: BaseException) -> str:
    text = str(e)
    return (f"{type(e).__name__}: {text}" if text and text != "()" else type(e).__name__)[:200]


def classify_error(f: str, e: BaseException, maybe_applied: bool) -> dict[str, Any]:
    """The outcome of an operation that ended in error e, given whether its effect may have been sent."""
    if f in ("read", "read-set") or not maybe_applied or isinstance(e, NOT_APPLIED):
        return outcome("fail", None, describe(e))
    return outcome("info", None, describe(e))


def _awaited(result) -> asyncio.Future:
    """An asyncio future settled when kazoo's IAsyncResult is (on kazoo's threads)."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def settle(r) -> None:
        if fut.done():  # given up on (timeout): kazoo's answer is nobody's business now
            return
        if r.successful():
            fut.set_result(r.value)
        else:
            fut.set_exception(r.exception)

    def done(r) -> None:
        try:
            loop.call_soon_threadsafe(settle, r)
        except RuntimeError:  # the loop has closed: nobody waits any more
            pass

    result.rawlink(done)
    return fut


class _Attempt:
    """One operation's requests; knows whether something that changes state may have been applied."""

    def __init__(self) -> None:
        self.maybe_applied = False

    async def ask(self, result) -> Any:
        """A request that changes nothing (get, sync, get_children, a parent's create)."""
        if result.ready() and isinstance(result.exception, REFUSED):
            raise result.exception  # kazoo refused it before queueing: not sent
        return await _awaited(result)

    async def effect(self, result) -> Any:
        """The request that is the operation's effect: once queued, it may be applied."""
        if result.ready() and isinstance(result.exception, REFUSED):
            raise result.exception
        self.maybe_applied = True
        try:
            return await _awaited(result)
        except NOT_APPLIED:
            self.maybe_applied = False  # ZooKeeper said so: this one was not applied
            raise


def kazoo_session(address: str) -> KazooClient:
    """A kazoo client bound to the one server at address ("ip:port"), not yet started."""
    return KazooClient(
        hosts=address,
        timeout=SESSION_TIMEOUT_S,
        connection_retry=KazooRetry(**RECONNECT),
        command_retry=None,  # never resend: a write sent twice is two writes
        randomize_hosts=False,
        logger=LOG,
    )


class ZooKeeperClient:
    """Workload operations on a ZooKeeper ensemble: registers (read/write/cas), a set (add, read)."""

    def __init__(self, addresses: dict[str, str], timeout: float = 1.0, sync_reads: bool = False,
                 session=kazoo_session):
        self.addresses = dict(addresses)
        self.timeout = timeout
        self.sync_reads = sync_reads
        self._new_session = session  # address -> an unstarted KazooClient (a fake in tests)
        self._sessions: dict[tuple[str, Any], Any] = {}  # (node, client slot) -> session
        self._reads = SetReads()

    def _session(self, node_id: str, client: Any = None):
        zk = self._sessions.get((node_id, client))
        if zk is None:
            zk = self._new_session(self.addresses[node_id])
            zk.start_async()  # kazoo connects (and reconnects) on its own thread
            self._sessions[(node_id, client)] = zk
        return zk

    async def _connected(self, zk, wait: float) -> bool:
        deadline = asyncio.get_running_loop().time() + wait
        while not zk.connected:
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def invoke(self, node_id: str, op: dict[str, Any]) -> dict[str, Any]:
        f, key = self._reads.kind(op), op.get("key")
        if f not in ("read", "read-set", "write", "cas", "add"):
            return outcome("fail", None, f"unknown operation {f!r}")
        attempt = _Attempt()
        try:
            async with asyncio.timeout(self.timeout):
                zk = self._session(node_id, op.get("client"))
                if not await self._connected(zk, self.timeout * CONNECT_SHARE):
                    return outcome("fail", None, "not connected")  # nothing sent
                return await self._perform(zk, f, key, op.get("value"), attempt)
        except TimeoutError:
            return classify_error(f, TimeoutError("timeout"), attempt.maybe_applied) | {"error": "timeout"}
        except KazooException as e:
            return classify_error(f, e, attempt.maybe_applied)

    async def _perform(self, zk, f: str, key: Any, value: Any, attempt: _Attempt) -> dict[str, Any]:
        if f == "read":
            path = register_path(key)
            if self.sync_reads:
                await attempt.ask(zk.sync_async(path))
            try:
                data, _stat = await attempt.ask(zk.get_async(path))
            except NoNodeError:
                return outcome("ok", None)
            return outcome("ok", decode(data))
        if f == "read-set":
            path = set_path(key)
            if self.sync_reads:
                await attempt.ask(zk.sync_async(path))
            try:
                names = await attempt.ask(zk.get_children_async(path))
            except NoNodeError:
                return outcome("ok", [])
            elements = (decode(unquote(n).encode()) for n in names)
            return outcome("ok", sorted(elements, key=lambda v: (str(type(v)), v)))
        if f == "write":
            path = register_path(key)
            try:
                await attempt.effect(zk.set_async(path, encode(value)))
            except NoNodeError:
                try:
                    await attempt.effect(zk.create_async(path, encode(value)))
                except NodeExistsError:  # created between our set and our create
                    await attempt.effect(zk.set_async(path, encode(value)))
            return outcome("ok", value)
        if f == "cas":
            frm, to = value
            path = register_path(key)
            try:
                data, stat = await attempt.ask(zk.get_async(path))
            except NoNodeError:
                return outcome("fail", None, "cas-mismatch: no such register")
            if decode(data) != frm:
                return outcome("fail", None, "cas-mismatch")
            await attempt.effect(zk.set_async(path, encode(to), stat.version))
            return outcome("ok", value)
        # add
        parent = set_path(key)
        child = f"{parent}/{quote(json.dumps(value), safe='')}"
        try:
            try:
                await attempt.effect(zk.create_async(child, encode(value)))
            except NoNodeError:  # the set's parent znode is not there yet
                try:
                    await attempt.ask(zk.create_async(parent, b""))
                except NodeExistsError:
                    pass
                await attempt.effect(zk.create_async(child, encode(value)))
        except NodeExistsError:
            pass  # the element is in the set already
        return outcome("ok", value)

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}

        def stop(zk) -> None:
            try:
                zk.stop()
                zk.close()
            except Exception:  # closing what is already broken: nothing left to do
                pass

        if sessions:
            await asyncio.gather(*(asyncio.to_thread(stop, zk) for zk in sessions))
