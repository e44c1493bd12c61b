"""etcd's v3 lock API on a lease, over the JSON gateway, as concurrency.Mutex users hold it.

Grant a lease with the TTL (/v3/lease/grant), keep it alive every ttl/3 (/v3/lease/keepalive, one
message per request), and lock (/v3/lock/lock with the lease): the answer's key exists while the lock
is held. Token: that key's create revision (/v3/kv/range), which grows with every new holder, since
the lock goes to the oldest waiting key. The holder believes it holds until its deadline, the last
keepalive's send time plus the TTL etcd answered, on its wall clock, or until a keepalive answers
TTL 0 (the lease is gone: "expired"). Like a Go program's session it is not told when the lease
expires while it is paused: it finds out when it next looks.
"""

from __future__ import annotations

import base64
import threading
import time

from targets.candidates.recipes.http import Unreachable, call

LOCK_NAME = "splitbrain-leader-lock"


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


class EtcdLock:
    def __init__(self, servers: dict[str, str], me: str, ttl: float, **_):
        self.servers, self.me = servers, me
        self.ttl = max(1, round(ttl))  # etcd's TTLs are whole seconds
        self.order = list(servers)
        self.lease: str | None = None
        self.key: str | None = None
        self.deadline: float | None = None
        self.lost: str | None = None
        self.lock = threading.Lock()

    def _post(self, path: str, body: dict, timeout: float = 1.0) -> dict:
        """To each server in turn until one answers 200 (the gateway forwards to the leader)."""
        last = "no server answered"
        for _ in range(len(self.order)):
            node = self.order[0]
            try:
                status, doc = call(self.servers[node], "POST", path, body, timeout)
            except Unreachable as e:
                last = str(e)
                self.order.append(self.order.pop(0))
                continue
            if status == 200:
                return doc
            last = f"{node}{path}: HTTP {status}: {str(doc)[:200]}"
            self.order.append(self.order.pop(0))
        raise Unreachable(last)

    def _grant(self) -> None:
        sent = time.time()
        doc = self._post("/v3/lease/grant", {"TTL": self.ttl})
        self.lease = doc["ID"]
        self.deadline = sent + int(doc.get("TTL", self.ttl))
        threading.Thread(target=self._keepalive, args=(self.lease,), daemon=True).start()

    def _keepalive(self, lease: str) -> None:
        while True:
            time.sleep(self.ttl / 3)
            with self.lock:
                if self.lease != lease:
                    return
            sent = time.time()
            try:
                doc = self._post("/v3/lease/keepalive", {"ID": lease}, timeout=self.ttl / 3)
            except Unreachable:
                continue
            ttl = int((doc.get("result") or {}).get("TTL", 0))
            with self.lock:
                if self.lease != lease:
                    return
                if ttl <= 0:
                    self.lost = "expired"  # etcd says the lease is gone
                    self.lease = None
                    return
                self.deadline = sent + ttl

    def acquire(self, timeout: float):
        with self.lock:
            fresh = self.lease is None or self.deadline is None or time.time() >= self.deadline
        if fresh:
            self.lost = None
            self._grant()
        try:
            doc = self._post("/v3/lock/lock", {"name": b64(LOCK_NAME), "lease": self.lease}, timeout=timeout)
        except Unreachable as e:
            # Still waiting (the lock call timed out) or etcd is away: our waiter key stays on the lease and
            # may be granted later (locking again with the same lease is the same acquisition): unknown.
            raise TimeoutError(f"lock not granted: {e}") from None
        key = doc["key"]
        rng = self._post("/v3/kv/range", {"key": key})
        kvs = rng.get("kvs") or []
        token = int(kvs[0]["create_revision"]) if kvs else int(doc["header"]["revision"])
        with self.lock:
            if self.lost or self.deadline is None or time.time() >= self.deadline:
                return None  # the lease ran out while we waited
            self.key = key
            return token, self.deadline

    def check(self):
        with self.lock:
            if self.lost:
                return False, self.lost
            if self.deadline is None or time.time() >= self.deadline:
                return False, "expired"
            return True, self.deadline

    def release(self) -> None:
        with self.lock:
            key, lease, self.key, self.lease, self.deadline = self.key, self.lease, None, None, None
        try:
            if key:
                self._post("/v3/lock/unlock", {"key": key})
            if lease:
                self._post("/v3/lease/revoke", {"ID": lease})
        except Unreachable:
            pass

    def close(self) -> None:
        self.release()
