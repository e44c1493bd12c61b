"""Redlock across independent Redis primaries (the `redis` target), with pottery's Redlock.

antirez's algorithm (redis.io, "Distributed Locks with Redis"): with N independent servers, SET key token NX
PX ttl on each, with a short per-server timeout; the lock is held if a majority (N//2 + 1) said OK and the
time the attempt took is below the TTL; its validity is the TTL minus that time minus an allowance for clock
drift between the servers. If not held, unlock everywhere. Extending resets the TTL on a majority.

pottery (PyPI, maintained; installed in the candidate image at build time, targets/candidates/
requirements.txt) implements exactly that: `Redlock(key, masters, auto_release_time)`, acquire with the
SETs in parallel threads, drift = 1% of the TTL + 2 ms, elapsed time on a monotonic timer, `extend()` and
`release()` by token-checking Lua scripts on a majority. The holder here believes it holds for the validity
it was granted, on the monotonic clock as pottery measures it (so a clock fault on the candidate does not
move it: Redlock's clock assumption is about the servers, whose key TTLs run on their own clocks); the
deadline it reports is that validity's end read on its wall clock at the time. Extended every ttl/3; each
extension's validity runs from the moment it was sent.

Fencing token: Redlock has none (Kleppmann, "How to do distributed locking", 2016: its random value cannot be
ordered). Ours, our addition and no part of Redlock, is a counter raised on a majority while holding:
read the counter on every server where we hold the lock (`READ_SCRIPT`), take the highest plus one, and raise
each server's counter to at least that where we still hold (`RAISE_SCRIPT`); the token counts only if a
majority took it. Two holders' majorities share a server, where the later one reads the earlier one's
counter, so tokens grow with holders, under Redlock's own assumptions: no server forgets (a restart without
an fsync'd AOF loses the key and the counter), and holds do not overlap on a server (checked in each
script, which runs atomically).
"""

from __future__ import annotations

import concurrent.futures
import logging
import sys
import threading
import time

from targets.candidates.recipes import lease_held, ticks
from targets.candidates.recipes.redis_lock import socket_timeout

LOCK_NAME = "splitbrain-leader-lock"  # pottery keeps it as "redlock:<name>"
COUNTER_KEY = "splitbrain-leader-fence"
RETRY_S = 0.2  # pottery's own retry delay: a random wait up to this between attempts
DRIFT_FACTOR = 0.01  # pottery's Redlock._CLOCK_DRIFT_FACTOR, and antirez's example
DRIFT_FIXED_S = 0.002  # pottery adds 2 ms

# -1: the lock key is not ours here. Else the counter (0 if never raised).
READ_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
return tonumber(redis.call('GET', KEYS[2]) or '0')
"""
# 1 if the counter is now at least ARGV[2] and the lock key is still ours here, else 0.
RAISE_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[2]) then redis.call('SET', KEYS[2], ARGV[2]) end
return 1
"""


def majority(n: int) -> int:
    return n // 2 + 1


def valid_until(started: float, ttl: float) -> float:
    """When a lock whose attempt began at `started` stops being valid: antirez's validity, TTL minus the
    time the attempt took minus the drift allowance (pottery's), counted from the attempt's start."""
    return started + ttl - (ttl * DRIFT_FACTOR + DRIFT_FIXED_S)


def fencing_token(counters: list[int | None], n: int) -> int | None:
    """The token to raise a majority to, from the counters read (None: no answer; -1: the lock is not ours
    there); None when fewer than a majority of the n servers say we hold."""
    held = [c for c in counters if c is not None and c >= 0]
    return max(held) + 1 if len(held) >= majority(n) else None


class Redlock:
    def __init__(self, servers: dict[str, str], me: str, ttl: float, **_):
        from pottery import Redlock as PotteryRedlock
        from redis import Redis

        # pottery logs every server error with a traceback; a paused server would fill the candidate's log.
        logging.getLogger("pottery").setLevel(logging.CRITICAL)
        self.ttl = ttl
        limit = socket_timeout(ttl)
        self.masters = [Redis(host=addr.rpartition(":")[0], port=int(addr.rpartition(":")[2]), socket_timeout=limit,
                              socket_connect_timeout=limit) for _, addr in sorted(servers.items())]
        self.lock = PotteryRedlock(key=LOCK_NAME, masters=self.masters, auto_release_time=ttl,
                                   num_extensions=sys.maxsize)
        self.read = self.masters[0].register_script(READ_SCRIPT)
        self.raise_ = self.masters[0].register_script(RAISE_SCRIPT)
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=2 * len(self.masters))
        self.guard = threading.Lock()
        self.until: float | None = None  # the validity's end, monotonic
        self.deadline: float | None = None  # the same, read on the wall clock when granted
        self.lost: str | None = None
        self.generation = 0

    def _on_each(self, script, args: list) -> list:
        """The script's answer from every server where the lock key is ours, None where it did not answer."""
        def one(master):
            try:
                return script(keys=[self.lock.key, COUNTER_KEY], args=args, client=master)
            except Exception:
                return None
        return list(self.pool.map(one, self.masters))

    def _grant(self, started: float) -> None:
        """A validity from an attempt begun at `started` (with self.guard held)."""
        self.until = valid_until(started, self.ttl)
        self.deadline = time.time() + (self.until - time.monotonic())

    def acquire(self, timeout: float):
        import random

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            started = time.monotonic()
            if not self.lock.acquire(blocking=False):  # pottery unlocks everywhere when it fails
                time.sleep(random.uniform(0, RETRY_S))
                continue
            me = self.lock._uuid  # the lock's random value (pottery keeps it here)
            token = fencing_token(self._on_each(self.read, [me]), len(self.masters))
            raised = 0 if token is None else sum(1 for r in self._on_each(self.raise_, [me, token]) if r == 1)
            if token is None or raised < majority(len(self.masters)) or time.monotonic() >= valid_until(started,
                                                                                                       self.ttl):
                self._give_back()  # lost or expired before the token was ours: we hold nothing
                return None
            with self.guard:
                self.generation += 1
                self.lost = None
                gen = self.generation
                self._grant(started)
            threading.Thread(target=self._renew, args=(gen,), daemon=True).start()
            return token, self.deadline
        return None

    def _renew(self, gen: int) -> None:
        from pottery.exceptions import ExtendUnlockedLock

        for _ in ticks(self.ttl / 3, self.guard, lambda: gen == self.generation and not self.lost):
            started = time.monotonic()
            try:
                self.lock.extend()
            except ExtendUnlockedLock:
                continue  # not on a majority (unreachable, or expired there): the validity we have stands
            with self.guard:
                if gen != self.generation:
                    return
                self._grant(started)

    def check(self):
        with self.guard:
            held, why = lease_held(self.lost, self.until, now=time.monotonic())
            return (True, self.deadline) if held else (False, why)

    def _give_back(self) -> None:
        try:
            self.lock.release()
        except Exception:  # not on a majority: the TTL ends it
            pass

    def release(self) -> None:
        with self.guard:
            self.generation += 1
            self.until = self.deadline = None
        self._give_back()

    def close(self) -> None:
        self.release()
        self.pool.shutdown(wait=False)
