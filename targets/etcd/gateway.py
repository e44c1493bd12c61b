"""etcd's v3 JSON gateway: the requests a workload operation becomes, and what each answer means.

The gateway (HTTP on the client port, JSON bodies, keys and values base64)
fronts the same gRPC service etcdctl uses. Values are stored as JSON text so a
read gives back exactly what was written. Outcomes (docs: targets/etcd/README.md):

- ``ok``: 200 (a cas only if its txn compare `succeeded`).
- ``fail``, certainly not applied: the connection was never opened (nothing
  was sent); a cas whose compare was false; a gRPC error etcd returns before
  proposing anything (InvalidArgument, ResourceExhausted: too many requests or
  no space) or raft's "proposal dropped" (the proposal was neither logged nor
  forwarded); a 404/405 from the gateway's router (no handler ran). A read
  changes nothing, so a read that did not answer is also ``fail``.
- ``info``, may have been applied: a timeout or reset after sending, etcd's
  "request timed out", "leader changed", "server stopped", any other error.

This module only builds requests and reads answers (pure functions, tested on
canned responses); targets.etcd.plugin sends them with httpx.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

SET_PREFIX = "set-element/"  # the set workload: one key per element under SET_PREFIX + set key + "/"

# gRPC codes (google.golang.org/grpc/codes) that etcd returns before it proposes a request.
INVALID_ARGUMENT = 3  # validation: empty key, too large, duplicate key in a txn...
RESOURCE_EXHAUSTED = 8  # "too many requests" (apply lags commit), "database space exceeded" (rejected at apply)
NOT_APPLIED_CODES = frozenset({INVALID_ARGUMENT, RESOURCE_EXHAUSTED})
# raft.ErrProposalDropped: "the proposal is ignored", neither appended nor forwarded.
NOT_APPLIED_MESSAGES = ("raft proposal dropped",)


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def encode_value(value: Any) -> str:
    return b64(json.dumps(value))


def decode_value(text: str | None) -> Any:
    """A stored value: the JSON text we wrote (an absent "value" is etcd's empty value)."""
    raw = unb64(text) if text else b""
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", "replace")  # written by someone else (etcdctl): shown as text


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that makes a range read every key starting with prefix (etcd's GetPrefixRangeEnd)."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"  # every key


@dataclass(frozen=True)
class Request:
    """One gateway call: POST path with a JSON body."""

    path: str
    body: dict[str, Any]
    f: str  # the workload operation it serves: read, write, cas, add, read-set
    echo: Any = None  # the value an ok write or cas reports


def set_element_key(key: str, value: Any) -> str:
    return f"{SET_PREFIX}{key}/{value}"


def build_request(op: dict[str, Any], serializable: bool = False, set_keys: frozenset[str] = frozenset()) -> Request:
    """The gateway request for a workload operation (ValueError for an operation we do not know)."""
    f, key, value = op["f"], str(op.get("key")), op.get("value")
    if f == "read" and (key in set_keys or op.get("set")):
        prefix = f"{SET_PREFIX}{key}/".encode()
        return Request("/v3/kv/range", {"key": b64(prefix), "range_end": b64(prefix_end(prefix)),
                                        "serializable": serializable}, "read-set")
    if f == "read":
        return Request("/v3/kv/range", {"key": b64(key), "serializable": serializable}, "read")
    if f == "write":
        return Request("/v3/kv/put", {"key": b64(key), "value": encode_value(value)}, "write", echo=value)
    if f == "add":
        return Request("/v3/kv/put", {"key": b64(set_element_key(key, value)), "value": encode_value(value)},
                       "add", echo=value)
    if f == "cas":
        frm, to = value
        return Request("/v3/kv/txn", {
            "compare": [{"key": b64(key), "target": "VALUE", "result": "EQUAL", "value": encode_value(frm)}],
            "success": [{"request_put": {"key": b64(key), "value": encode_value(to)}}],
        }, "cas", echo=value)
    raise ValueError(f"unknown operation {f!r}")


def outcome(kind: str, value: Any = None, error: str | None = None) -> dict[str, Any]:
    return {"type": kind, "value": value, "error": error}


def is_read(f: str) -> bool:
    return f in ("read", "read-set")


def unsent(error: str) -> dict[str, Any]:
    """Nothing reached etcd (the connection was never opened): whatever it was, it did not happen."""
    return outcome("fail", None, error)


def unanswered(req: Request, error: str) -> dict[str, Any]:
    """Sent, then no answer (timeout, reset): a write may have been applied; a read changed nothing."""
    return outcome("fail" if is_read(req.f) else "info", None, error)


def classify(req: Request, status: int, doc: Any) -> dict[str, Any]:
    """The outcome of an answered request: HTTP status and the JSON body (anything, as parsed)."""
    doc = doc if isinstance(doc, dict) else {}
    if status == 200:
        if req.f == "read":
            kvs = doc.get("kvs") or []
            return outcome("ok", decode_value(kvs[0].get("value")) if kvs else None)
        if req.f == "read-set":
            return outcome("ok", sorted((decode_value(kv.get("value")) for kv in doc.get("kvs") or []),
                                        key=lambda v: (str(type(v)), v)))
        if req.f == "cas":
            # proto3 JSON leaves out a false `succeeded`.
            if doc.get("succeeded") is True:
                return outcome("ok", req.echo)
            return outcome("fail", None, "cas-mismatch")
        return outcome("ok", req.echo)
    error = error_text(status, doc)
    if is_read(req.f) or not_applied(status, doc):
        return outcome("fail", None, error)
    return outcome("info", None, error)


def error_text(status: int, doc: dict[str, Any]) -> str:
    message = doc.get("error") or doc.get("message") or ""
    code = doc.get("code")
    return f"{status}" + (f" code {code}" if code is not None else "") + (f": {message}" if message else "")


def not_applied(status: int, doc: dict[str, Any]) -> bool:
    """Does etcd guarantee this error answer applied nothing?"""
    code = doc.get("code")
    if isinstance(code, int) and code in NOT_APPLIED_CODES:
        return True
    message = str(doc.get("error") or doc.get("message") or "")
    if any(m in message for m in NOT_APPLIED_MESSAGES):
        return True
    # The gateway's router answers these itself, without a gRPC code: no handler ran.
    return code is None and status in (404, 405)


# ---- the status probe ------------------------------------------------------------------------
#
# Not /v3/maintenance/status: its raftTerm is the term of the last *applied*
# entry (etcdserver sets it in apply), so a member just elected reports itself
# leader of its previous term until its first entry of the new term is
# applied, which the split-brain checker rightly reads as two leaders of one
# term. /debug/vars (Go's expvar, on the client port) has "raft.status": the raft
# node's own Status (id, term, lead, raftState, commit), taken in one piece in
# the raft goroutine.

ROLES = {"StateLeader": "leader", "StateFollower": "follower", "StateCandidate": "candidate",
         "StatePreCandidate": "pre-candidate"}


def _uint(value: Any) -> int | None:
    """proto3 JSON writes 64-bit integers as strings."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _raft_id(value: Any) -> int | None:
    """A raft id as raft.status writes it: hex, "0" for none."""
    try:
        return int(str(value), 16) or None
    except ValueError:
        return None


def member_names(doc: Any) -> dict[int, str]:
    """member id -> name (we name each member by its node id) from /v3/cluster/member/list."""
    out: dict[int, str] = {}
    for m in (doc.get("members") or []) if isinstance(doc, dict) else []:
        mid = _uint(m.get("ID", m.get("id")))
        if mid is not None and m.get("name"):
            out[mid] = m["name"]
    return out


def raft_status(doc: Any) -> dict[str, Any] | None:
    """The "raft.status" of /debug/vars, None if absent (the raft node has not started)."""
    status = doc.get("raft.status") if isinstance(doc, dict) else None
    return status if isinstance(status, dict) else None


def raft_ids(status: dict[str, Any]) -> tuple[int | None, int | None]:
    """(this member's id, its leader's id; None for no leader)."""
    return _raft_id(status.get("id")), _raft_id(status.get("lead"))


def status_view(status: dict[str, Any], names: dict[int, str]) -> dict[str, Any] | None:
    """What the splitbrain observer wants of a member's raft status: role, term, leader (a node id), commit_index."""
    me, leader = raft_ids(status)
    term = status.get("term")
    if me is None or not isinstance(term, int):
        return None
    return {
        "role": ROLES.get(status.get("raftState"), str(status.get("raftState"))),
        "term": term,
        "leader": names.get(leader) if leader else None,
        "commit_index": status.get("commit") if isinstance(status.get("commit"), int) else None,
        "id": names.get(me),
        "member_id": f"{me:x}",
    }
