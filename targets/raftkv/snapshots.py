"""Snapshot files written without stalling the event loop or the driver (issue 17).

A 30 MB state took the loop 130 ms to encode as one ``json.dumps`` and the
driver another 160 ms or more to write and fsync, ticking nothing meanwhile:
longer than an election timeout, so the leader lost its lease and its followers
campaigned. Here

- encoding happens on the loop a batch of pieces at a time (``jsonstream``;
  a worker thread would not help, the C encoder holds the GIL throughout),
  and each batch is written on a worker thread, which is also where the loop
  gets its turn between batches;
- the node's own snapshot is written in the background: the driver goes on
  persisting and sending Readys, and only swaps in the compacted WAL once
  the snapshot is durable (``compact_wal``, a file of the log's tail only);
- a leader's snapshot installed on a follower is written the same way, but
  the driver awaits it: nothing after it may be acknowledged before it is
  durable (the driver still applies events meanwhile; their output waits for
  the next Ready: server.py). It first stops a background snapshot in
  progress, whose file would otherwise replace the newer one.

One ``SnapshotWriter`` per node, used from the loop only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging

from .jsonstream import batches
from .storage import SnapshotFile, Storage

log = logging.getLogger("raftkv")


class Superseded(Exception):
    """A background snapshot was given up for a newer one (installed or local)."""


class SnapshotWriter:
    def __init__(self, storage: Storage, on_written):
        self.storage = storage
        self._on_written = on_written  # called on the loop once a background snapshot is durable
        self._io = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="raftkv-snapshot")
        self._lock = asyncio.Lock()  # one snapshot file at a time: they share snapshot.tmp
        self._wanted: dict | None = None  # the newest background snapshot not yet started
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._generation = 0  # bumped to make a background write in progress give up
        self.batches_written = 0  # how many loop turns writing took, for tests and metrics

    def start(self) -> asyncio.Task:
        self._task = asyncio.create_task(self._background(), name="raftkv-snapshotter")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._io.shutdown(wait=True)  # a write in flight finishes before the storage closes

    def submit(self, snapshot: dict) -> None:
        """Write the node's own snapshot in the background (a newer one replaces one not yet started)."""
        self._wanted = snapshot
        self._wake.set()

    async def install(self, snapshot: dict) -> None:
        """Write an installed snapshot and the WAL after it; return once both are durable."""
        self._generation += 1  # a background write in progress stops at its next batch
        if self._wanted is not None and self._wanted["index"] <= snapshot["index"]:
            self._wanted = None
        async with self._lock:
            for file, pieces in self.storage.install_files(snapshot):
                await self._write(file, pieces, None)

    async def compact_wal(self) -> None:
        """Rewrite the WAL without the entries the durable snapshot covers (the driver awaits this)."""
        file, pieces = self.storage.compaction()
        await self._write(file, pieces, None)

    async def _background(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            snap, self._wanted = self._wanted, None
            if snap is None:
                continue
            async with self._lock:
                generation = self._generation
                durable = self.storage.snapshot
                if durable is not None and snap["index"] <= durable["index"]:
                    continue  # an install overtook it
                file, pieces = self.storage.snapshot_file(snap)
                try:
                    await self._write(file, pieces, generation)
                except Superseded:
                    log.info("snapshot at index %s given up for a newer one", snap["index"])
                    continue
            if self.storage.snapshot_written(snap):
                self._on_written(snap)

    async def _write(self, file: SnapshotFile, pieces, generation: int | None) -> None:
        loop = asyncio.get_running_loop()
        try:
            for batch in batches(pieces):
                if generation is not None and generation != self._generation:
                    raise Superseded()
                await loop.run_in_executor(self._io, file.write, batch)
                self.batches_written += 1
            if generation is not None and generation != self._generation:
                raise Superseded()
        except BaseException:
            await loop.run_in_executor(self._io, file.abort)
            raise
        if file.record:
            await loop.run_in_executor(self._io, file.commit)
        else:
            await loop.run_in_executor(self._io, self.storage.replace_wal, file)
