"""etcd's v3 lock API on a lease, over the JSON gateway, as concurrency.Mutex users hold it.

Grant a lease with the TTL (/v3/lease/grant), keep it alive every ttl/3 (/v3/lease/keepalive, one
message per request), and lock (/v3/lock/lock with the lease): the answer's key exists while the lock
is held. Token: that key's create revision (/v3/kv/range), which grows with every new holder, since
the lock goes to the oldest waiting key. The holder believes it holds until its deadline, the last
keepalive's send time plus the TTL etcd answered, on its wall clock, or until a keepalive answers
TTL 0 (the lease is gone: "expired"). Like a Go program's session it is not told when the lease
expires while it is paused: it finds out when it next looks.

Each campaign has a lease of its own: a lock call that is not granted within its timeout revokes its
lease, which removes its waiter key, so the campaign certainly failed (a waiter left behind on a lease
that lives on would be granted the lock with nobody believing it holds it). Keepalives go every ttl/4,
each bounded by ttl/4, so that one slow answer on a loaded machine does not cost the lease.
"""

from __future__ import annotations

import base64
import threading
import time

from targets.candidates.recipes import lease_held
from targets.candidates.recipes.http import Unreachable, call

LOCK_NAME = "splitbrain-leader-lock"
ELECTION_NAME = "splitbrain-leader-election"


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

    def _post(self, path: str, body: dict, timeout: float = 1.0, budget: float | None = None) -> dict:
        """To each server in turn until one answers 200 (the gateway forwards to the leader). With a
        budget, the attempts share it (a blocking lock call is not waited for once per server)."""
        last = "no server answered"
        end = time.monotonic() + budget if budget is not None else None
        for _ in range(len(self.order)):
            node = self.order[0]
            wait = timeout if end is None else end - time.monotonic()
            if wait <= 0:
                break
            try:
                status, doc = call(self.servers[node], "POST", path, body, wait)
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
        with self.lock:
            self.lease, self.lost = doc["ID"], None
            self.deadline = sent + int(doc.get("TTL", self.ttl))
        threading.Thread(target=self._keepalive, args=(doc["ID"],), daemon=True).start()

    def _keepalive(self, lease: str) -> None:
        # Every ttl/4, each try bounded by ttl/4: under load a slow answer must not cost the lease.
        while True:
            time.sleep(self.ttl / 4)
            with self.lock:
                if self.lease != lease:
                    return
            sent = time.time()
            try:
                doc = self._post("/v3/lease/keepalive", {"ID": lease}, timeout=self.ttl / 4)
            except Unreachable:
                continue
            ttl = int((doc.get("result") or {}).get("TTL", 0))
            with self.lock:
                if self.lease != lease:
                    return
                if ttl <= 0:
                    self.lost = "expired"  # etcd says the lease is gone
                    return
                self.deadline = sent + ttl

    def _revoke(self) -> None:
        with self.lock:
            lease, self.lease, self.key, self.deadline = self.lease, None, None, None
        if lease:
            self._post("/v3/lease/revoke", {"ID": lease})

    def acquire(self, timeout: float):
        # Every campaign on a lease of its own: a waiter left by an earlier attempt goes with its lease.
        try:
            self._revoke()
        except Unreachable as e:
            raise TimeoutError(f"could not revoke the last campaign's lease: {e}") from None
        self._grant()
        try:
            doc = self._wait_for_grant(timeout)
        except Unreachable as e:
            # Not granted in time, or etcd is away. Revoking the lease removes our waiter key; if that
            # succeeds the lock certainly did not come to us, else it may yet: unknown.
            try:
                self._revoke()
            except Unreachable:
                raise TimeoutError(f"lock not granted and lease not revoked: {e}") from None
            return None
        key = doc.get("key")
        kvs = (self._post("/v3/kv/range", {"key": key}).get("kvs") or []) if key else []
        if not kvs:
            # Granted, but the key is gone: seen when a lock call on the same lease had been abandoned
            # (its cleanup deletes the one key name a lease has). Holding nothing, we give the lease back.
            self._revoke()
            return None
        token = int(kvs[0]["create_revision"])
        with self.lock:
            ok = not self.lost and self.deadline is not None and time.time() < self.deadline
            if ok:
                self.key = key
                return token, self.deadline
        self._revoke()  # the lease ran out while we waited: give the lock back
        return None

    def _wait_for_grant(self, timeout: float) -> dict:
        """Block until the lock is ours; {"key": the key that holds it, ...}."""
        return self._post("/v3/lock/lock", {"name": b64(LOCK_NAME), "lease": self.lease}, budget=timeout)

    def _give_back(self, key: str) -> None:
        self._post("/v3/lock/unlock", {"key": key})

    def check(self):
        with self.lock:
            return lease_held(self.lost, self.deadline)

    def release(self) -> None:
        with self.lock:
            key = self.key
        try:
            if key:
                self._give_back(key)
            self._revoke()
        except Unreachable:
            pass

    def close(self) -> None:
        self.release()


class EtcdElection(EtcdLock):
    """etcd's v3 election API on the same lease machinery: /v3/election/campaign blocks until this candidate
    is the leader; the token is its campaign key's create revision; /v3/election/resign gives it up."""

    def _wait_for_grant(self, timeout: float) -> dict:
        doc = self._post("/v3/election/campaign", {"name": b64(ELECTION_NAME), "lease": self.lease,
                                                  "value": b64(self.me)}, budget=timeout)
        self._leader = doc.get("leader") or {}
        return {"key": self._leader.get("key"), "header": doc.get("header")}

    def _give_back(self, key: str) -> None:
        self._post("/v3/election/resign", {"leader": self._leader})
