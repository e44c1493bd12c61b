"""A lease in raftkv, the way many applications build one over any compare-and-set store.

One record, {"holder", "token", "expires"}: `expires` is on the holder's wall clock. A candidate that
reads a record whose `expires` is past on its own clock takes it by cas, with token + 1 (the cas makes
the tokens strictly increasing: two takers of one record cannot both succeed). The holder renews by cas
every ttl/3 and believes it holds until its deadline (its wall clock), or until a renewal finds the
record taken. Its safety rests on the clocks agreeing: a clock fault breaks it on purpose.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import quote

from targets.candidates.recipes import LEASE_KEY, lease_held
from targets.candidates.recipes.http import Unreachable, call

PATH = f"/kv/{quote(LEASE_KEY, safe='')}"


class RaftKVLease:
    def __init__(self, servers: dict[str, str], me: str, ttl: float, **_):
        self.servers, self.me, self.ttl = servers, me, ttl
        self.leader: str | None = None
        self.record: dict | None = None  # what we last wrote, while we hold
        self.deadline: float | None = None
        self.lost: str | None = None
        self.lock = threading.Lock()
        self._renewer: threading.Thread | None = None

    def _request(self, method: str, body: dict | None = None, timeout: float = 1.0) -> tuple[int, dict]:
        """To the leader raftkv last named, else each server in turn (503 not-leader names the leader)."""
        order = ([self.leader] if self.leader in self.servers else []) + [s for s in self.servers if s != self.leader]
        last: Exception | None = None
        for node in order:
            try:
                status, doc = call(self.servers[node], method, PATH + ("/cas" if method == "POST" else ""), body,
                                   timeout)
            except Unreachable as e:
                last = e
                continue
            if status == 503 and doc.get("error") == "not-leader":
                if doc.get("leader") in self.servers:
                    self.leader = doc["leader"]
                continue
            self.leader = node
            return status, doc
        raise Unreachable(str(last) if last else "no raftkv node is the leader")

    def acquire(self, timeout: float):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                status, doc = self._request("GET")
            except Unreachable:
                time.sleep(0.1)
                continue
            cur = doc.get("value") if status == 200 else None
            if isinstance(cur, dict) and (cur.get("holder") is None or cur.get("expires", 0) < time.time()):
                now = time.time()
                mine = {"holder": self.me, "token": int(cur.get("token", 0)) + 1, "expires": now + self.ttl}
                try:
                    status, _ = self._request("POST", {"from": cur, "to": mine})
                except Unreachable:
                    # The cas may have applied: we cannot know, so the campaign's outcome is unknown.
                    raise
                if status == 200:
                    with self.lock:
                        self.record, self.deadline, self.lost = mine, now + self.ttl, None
                    self._renewer = threading.Thread(target=self._renew, args=(mine["token"],), daemon=True)
                    self._renewer.start()
                    return mine["token"], self.deadline
            time.sleep(self.ttl / 4)
        return None

    def _renew(self, token: int) -> None:
        while True:
            time.sleep(self.ttl / 3)
            with self.lock:
                if self.record is None or self.record["token"] != token or self.lost:
                    return
                cur = self.record
            now = time.time()
            new = {**cur, "expires": now + self.ttl}
            try:
                status, doc = self._request("POST", {"from": cur, "to": new}, timeout=self.ttl / 3)
            except Unreachable:
                continue  # the deadline stands; check() says when it has passed
            with self.lock:
                if self.record is not cur:
                    return
                if status == 200:
                    self.record, self.deadline = new, now + self.ttl
                elif status == 409:
                    self.lost = "taken"
                    return

    def check(self):
        with self.lock:
            return lease_held(self.lost, self.deadline)

    def release(self) -> None:
        with self.lock:
            cur, self.record, self.deadline = self.record, None, None
        if cur is not None and cur.get("expires", 0) > time.time():
            try:
                self._request("POST", {"from": cur, "to": {**cur, "holder": None, "expires": 0}})
            except Unreachable:
                pass

    def close(self) -> None:
        self.release()
