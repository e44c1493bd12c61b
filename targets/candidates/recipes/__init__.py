"""Leader-election recipes, one module each behind one small interface, as applications use them.

A recipe runs inside the candidate (targets/candidates/candidate.py) with the standard library and its
service's client library, installed in the candidate image (from Debian; pottery, for Redlock, from PyPI
at image build time, see targets/candidates/requirements.txt). It is a class built as
`Recipe(servers, me, ttl)` (servers: node id -> "ip:port" of the service's client API) with:

- `acquire(timeout) -> (token, deadline) | None`: campaign; the token is the service's monotonically
  increasing fencing token; `deadline` is when the holder must stop believing it leads, on this
  candidate's wall clock (time.time(), which a clock fault skews), or None when the recipe has no
  deadline of its own (ZooKeeper: the session says). None: not acquired (certainly). An exception: unknown.
- `check() -> (True, deadline) | (False, why)`: does it still hold, as far as the recipe can tell now;
  `why` is "expired", "session-lost", "taken", "revoked" and the like.
- `release()`, `close()`.

The harness reads `RECIPES` (name -> Meta): the target the recipe runs against and the setup it needs,
so adding a recipe is one module and one line here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Meta:
    module: str  # "targets.candidates.recipes.<name>:<Class>"
    target: str  # the coordination service it needs (a target name)
    about: str
    # Workload ops run once with the target's client before candidates start (e.g. the lease record).
    setup: tuple[dict[str, Any], ...] = ()


LEASE_KEY = "splitbrain-leader-lease"

RECIPES: dict[str, Meta] = {
    "raftkv-lease": Meta("targets.candidates.recipes.raftkv_lease:RaftKVLease", "raftkv",
                         "a lease record in raftkv taken and renewed by cas, expiry on the holder's wall clock",
                         ({"f": "write", "key": LEASE_KEY, "value": {"holder": None, "token": 0, "expires": 0}},)),
    "etcd-lock": Meta("targets.candidates.recipes.etcd_lock:EtcdLock", "etcd",
                      "etcd's v3 lock API on a lease with a TTL, kept alive; token: the lock key's create revision"),
    "etcd-election": Meta("targets.candidates.recipes.etcd_lock:EtcdElection", "etcd",
                          "etcd's v3 election API (campaign, resign) on a lease with a TTL; token: the campaign "
                          "key's create revision"),
    "zk-lock": Meta("targets.candidates.recipes.zk_lock:ZooKeeperLock", "zookeeper",
                    "kazoo's Lock recipe (ephemeral sequential znodes); token: the znode's sequence number"),
    "zk-lock-watch": Meta("targets.candidates.recipes.zk_lock:WatchfulZooKeeperLock", "zookeeper",
                          "kazoo's Lock, and the holder stops believing as soon as its connection is SUSPENDED"),
    "redis-lock": Meta("targets.candidates.recipes.redis_lock:RedisLock", "redis-sentinel",
                       "redis-py's Lock (SET NX PX, Lua extend and release) on the primary the Sentinels name; "
                       "token: an INCR of a counter key taken in one script with a check that the lock is still ours"),
    "redlock": Meta("targets.candidates.recipes.redlock:Redlock", "redis",
                    "Redlock (pottery's) across independent Redis primaries, a majority with drift-adjusted validity; "
                    "token: a counter raised on a majority while holding (our addition: Redlock has none)"),
}


def load(name: str):
    """The recipe class called name (inside the candidate: plain import, no plugin machinery)."""
    import importlib

    meta = RECIPES.get(name)
    if meta is None:
        raise KeyError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    module, _, attr = meta.module.partition(":")
    return getattr(importlib.import_module(module), attr)


def ticks(period: float, guard: threading.Lock, current: Callable[[], bool]) -> Iterator[None]:
    """A renewer thread's loop: one step every `period` for as long as current() (read under guard) says the
    hold it renews is still the one it was started for."""
    while True:
        time.sleep(period)
        with guard:
            if not current():
                return
        yield


def lease_held(lost: str | None, deadline: float | None, now: float | None = None) -> tuple[bool, Any]:
    """`check()` of a recipe that holds a lease until a deadline on its own wall clock: (True, the
    deadline) while it holds, else (False, why: what it lost it to, or "expired"). `now`: the clock the
    deadline is on, if not the wall clock (Redlock measures its validity on the monotonic clock)."""
    if lost:
        return False, lost
    if deadline is None or (time.time() if now is None else now) >= deadline:
        return False, "expired"
    return True, deadline
