"""A few lines of JSON over HTTP for the recipes whose service speaks it (raftkv, etcd's gateway): stdlib only."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


class Unreachable(Exception):
    """Nothing was sent, or no answer came: for a write, the outcome is unknown."""


def call(address: str, method: str, path: str, body: dict | None = None, timeout: float = 1.0) -> tuple[int, dict]:
    """(status, JSON body) of one request; Unreachable when there was no answer."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{address}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw.strip() else {}
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw) if raw.strip() else {}
        except ValueError:
            return e.code, {"error": raw[:200].decode("utf-8", "replace")}
    except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as e:
        raise Unreachable(f"{address}{path}: {e}") from None
