"""kazoo's Lock recipe on ZooKeeper: ephemeral sequential znodes, the lowest holds.

Token: the holder's znode sequence number (ZooKeeper assigns them in order, so a later holder's is
higher). ZooKeeper has no client-side deadline: the session does. By default the holder believes it
holds until kazoo reports the session LOST (expired), which it can only learn once it reconnects, the
way most applications use Lock. With --watch-connection it also stops at SUSPENDED (the connection
dropped; the session may still be alive), the defensive use kazoo's documentation recommends.
"""

from __future__ import annotations

import threading

LOCK_PATH = "/splitbrain-leader-lock"


class ZooKeeperLock:
    def __init__(self, servers: dict[str, str], me: str, ttl: float, watch_connection: bool = False, **_):
        from kazoo.client import KazooClient

        self.me, self.watch = me, watch_connection
        self.lost: str | None = None
        self.held = False
        self.guard = threading.Lock()
        self.client = KazooClient(hosts=",".join(servers.values()), timeout=ttl, connection_retry={"max_tries": -1},
                                  command_retry={"max_tries": 3})
        self.client.add_listener(self._state)
        self.client.start(timeout=30)
        self.lock = self.client.Lock(LOCK_PATH, identifier=me)

    def _state(self, state) -> None:
        from kazoo.protocol.states import KazooState

        with self.guard:
            if not self.held:
                return
            if state == KazooState.LOST:
                self.lost = "session-lost"
            elif state == KazooState.SUSPENDED and self.watch:
                self.lost = "suspended"

    def acquire(self, timeout: float):
        from kazoo.exceptions import LockTimeout

        with self.guard:
            self.lost = None
        try:
            got = self.lock.acquire(timeout=timeout)
        except LockTimeout:
            raise TimeoutError(f"lock not granted within {timeout:g}s") from None
        if not got:
            return None
        node = self.lock.node or ""
        with self.guard:
            self.held = True
        return int(node[-10:]), None

    def check(self):
        with self.guard:
            if self.lost:
                return False, self.lost
            return True, None

    def release(self) -> None:
        with self.guard:
            self.held = False
        try:
            self.lock.release()
        except Exception:
            pass
        # A lock whose session was lost may think it still holds its old znode: start from a fresh one.
        self.lock = self.client.Lock(LOCK_PATH, identifier=self.me)

    def close(self) -> None:
        self.release()
        self.client.stop()


class WatchfulZooKeeperLock(ZooKeeperLock):
    """The defensive use: a holder whose connection is suspended stops at once (its session may be alive)."""

    def __init__(self, servers: dict[str, str], me: str, ttl: float, **kw):
        super().__init__(servers, me, ttl, watch_connection=True)
