"""redis-py's Lock on the primary that Redis Sentinel names, as applications use it: single instance.

The candidate finds the primary through the Sentinels (redis-py's `Sentinel.master_for`, whose connection
pool asks a Sentinel when it opens a connection, and again after a READONLY) and locks there with
redis-py's `Lock`: `SET name token NX PX ttl` to acquire, a Lua script that checks the token to extend
(`reacquire`, every ttl/3 from a thread: redis-py does not renew by itself) and to release. Each candidate
lists the Sentinels starting from a different one (c1 from n1's, c2 from n2's, ...), as applications on
different hosts list their local Sentinel first; redis-py then keeps asking the one that answered.

The holder believes it holds until the last successful SET or extend's send time plus the TTL, on its wall
clock (time.time(), as applications compute such a deadline), or until an extend finds the key no longer
its own ("not-owned": expired and perhaps taken).

Fencing token: redis-py's Lock has none (its token is a random uuid: it says who holds, not in which order).
Ours is an INCR of a counter key, taken right after the SET in one script that first checks the lock key
still holds our token (FENCE_SCRIPT): on one server, scripts run one at a time and holds of the key do not
overlap, so a later holder's INCR comes after an earlier one's and its token is higher. An INCR taken
without that check (after the SET, in a separate command) would not be: a holder paused between the two,
whose key expired meanwhile, would take a token higher than the next holder's. What it cannot survive is
the weakness of the lock itself: replication is asynchronous, so a failover can lose the latest SET (two
holders) and the latest INCRs (a token handed out twice).
"""

from __future__ import annotations

import threading
import time

from targets.candidates.recipes import lease_held, ticks

# As targets/redis_sentinel/deploy.py configures every node (the candidate image does not carry that
# module; tests/test_redis_recipes.py checks they agree).
SENTINEL_PORT = 26379
MASTER_NAME = "mymaster"
LOCK_NAME = "splitbrain-leader-lock"
FENCE_KEY = "splitbrain-leader-fence"
RETRY_S = 0.1  # between two SET NX attempts: redis-py's own Lock.sleep

FENCE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('INCR', KEYS[2])
end
return false
"""


def sentinel_order(servers: dict[str, str], me: str) -> list[tuple[str, int]]:
    """The Sentinels' addresses, starting from the one whose position matches this candidate's number."""
    hosts = [(addr.rpartition(":")[0], SENTINEL_PORT) for _, addr in sorted(servers.items())]
    digits = "".join(ch for ch in me if ch.isdigit())
    k = (int(digits) - 1) % len(hosts) if digits and hosts else 0
    return hosts[k:] + hosts[:k]


def socket_timeout(ttl: float) -> float:
    """One command's budget: well under the TTL, so that a slow or unreachable server costs a retry, not the lock."""
    return max(0.1, min(0.5, ttl / 4))


class RedisLock:
    def __init__(self, servers: dict[str, str], me: str, ttl: float, **_):
        from redis.sentinel import Sentinel

        self.me, self.ttl = me, ttl
        limit = socket_timeout(ttl)
        self.sentinel = Sentinel(sentinel_order(servers, me), socket_timeout=limit, socket_connect_timeout=limit)
        self.client = self.sentinel.master_for(MASTER_NAME, socket_timeout=limit, socket_connect_timeout=limit)
        # thread_local=False: the renewer thread must see the token the main thread acquired with.
        self.lock = self.client.lock(LOCK_NAME, timeout=ttl, thread_local=False)
        self.fence = self.client.register_script(FENCE_SCRIPT)
        self.guard = threading.Lock()
        self.deadline: float | None = None
        self.lost: str | None = None
        self.generation = 0  # a renewer stops when the hold it was started for is over

    def acquire(self, timeout: float):
        from redis.exceptions import RedisError
        from redis.sentinel import MasterNotFoundError

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            sent = time.time()
            try:
                got = self.lock.acquire(blocking=False)
            except MasterNotFoundError:
                # No Sentinel named a primary: nothing was sent.
                time.sleep(RETRY_S)
                continue
            if not got:
                time.sleep(RETRY_S)
                continue
            try:
                token = self.fence(keys=[LOCK_NAME, FENCE_KEY], args=[self.lock.local.token])
            except RedisError as e:
                # We hold the lock and the INCR may have happened: give the lock back; the outcome is unknown.
                self._give_back()
                raise TimeoutError(f"lock taken, fencing token unknown: {type(e).__name__}: {e}") from None
            if token is None:
                # The key was no longer ours by the time the script ran: we hold nothing.
                self.lock.local.token = None
                return None
            with self.guard:
                self.generation += 1
                self.deadline, self.lost = sent + self.ttl, None
                gen = self.generation
            threading.Thread(target=self._renew, args=(gen,), daemon=True).start()
            return int(token), sent + self.ttl
        return None

    def _renew(self, gen: int) -> None:
        from redis.exceptions import LockError, RedisError

        for _ in ticks(self.ttl / 3, self.guard, lambda: gen == self.generation and not self.lost):
            sent = time.time()
            try:
                self.lock.reacquire()
            except LockError:  # LockNotOwnedError, or released meanwhile
                with self.guard:
                    if gen == self.generation:
                        self.lost = "not-owned"
                return
            except RedisError:
                continue  # the deadline stands; check() says when it has passed
            with self.guard:
                if gen != self.generation:
                    return
                self.deadline = sent + self.ttl

    def check(self):
        with self.guard:
            return lease_held(self.lost, self.deadline)

    def _give_back(self) -> None:
        try:
            self.lock.release()
        except Exception:  # not ours any more, or the server is away: the TTL ends it
            self.lock.local.token = None

    def release(self) -> None:
        with self.guard:
            self.generation += 1
            self.deadline = None
        if self.lock.local.token is not None:
            self._give_back()

    def close(self) -> None:
        self.release()
