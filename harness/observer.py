"""The observer: polls every node's status about every 50 ms and records what each believes.

Each node is polled by its own loop, so a paused or partitioned node that
never answers does not delay the samples of the others. A sample is recorded
as `{"process": "observer", "type": "ok", "f": "status", "node": N,
"value": {"role", "term", "leader", "commit_index", ...}}`, or with type
`info` and value null when the node did not answer in time (down, paused,
cut off). `checkers.election` reads exactly this shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Probe = Callable[[str], Awaitable[dict[str, Any] | None]]
Record = Callable[[str, dict[str, Any] | None], None]

STATUS_FIELDS = ("role", "term", "leader", "commit_index")


class Observer:
    """Polls `probe(node)` for each node every `interval` seconds and passes each sample to `record`."""

    def __init__(self, nodes: list[str], probe: Probe, record: Record, interval: float = 0.05, timeout: float = 0.25):
        self.nodes = list(nodes)
        self.probe = probe
        self.record = record
        self.interval = interval
        self.timeout = timeout
        self.latest: dict[str, dict[str, Any] | None] = {n: None for n in nodes}
        self.samples = 0
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        await asyncio.gather(*(self._poll(n) for n in self.nodes))

    async def _poll(self, node: str) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            started = loop.time()
            try:
                status = await asyncio.wait_for(self.probe(node), self.timeout)
            except asyncio.CancelledError:
                raise
            except Exception:
                status = None
            if self._stop.is_set():
                return
            value = _sample(status)
            self.latest[node] = value
            self.samples += 1
            self.record(node, value)
            wait = self.interval - (loop.time() - started)
            try:
                await asyncio.wait_for(self._stop.wait(), max(0.0, wait))
            except TimeoutError:
                pass

    def leader(self) -> str | None:
        """The node that most recently claimed to lead in the highest term observed, if any."""
        best: tuple[int, str] | None = None
        for node, s in self.latest.items():
            if s and s.get("role") == "leader":
                term = s.get("term") or 0
                if best is None or term > best[0]:
                    best = (term, node)
        return best[1] if best else None


def _sample(status: dict[str, Any] | None) -> dict[str, Any] | None:
    if not isinstance(status, dict):
        return None
    out = {k: status.get(k) for k in STATUS_FIELDS}
    for k, v in status.items():
        if k not in out and isinstance(v, (str, int, float, bool, type(None))):
            out[k] = v
    return out
