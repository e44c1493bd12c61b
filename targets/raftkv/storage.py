"""Durable Raft state on disk: a checksummed write-ahead log plus an atomic snapshot file.

A data directory holds three files (and a ``LOCK`` file, flocked while a node runs):

- ``FORMAT``: one line naming the on-disk format and its version. A directory
  written by another version is refused (``IncompatibleDataDir``) instead of
  being misread.
- ``wal``: the write-ahead log. After an 8-byte magic header, a sequence of
  records ``<len:u32 big-endian><crc32:u32 big-endian><JSON payload>``.
  A payload is one of
  ``{"t": "hs", "hs": {...}}`` (hard state: term, vote, ...),
  ``{"t": "trunc", "from": i}`` (drop entries with index >= i),
  ``{"t": "ent", "e": {...}}`` (one log entry, carrying "index" and "term").
  Replaying the records in order rebuilds the hard state and the log.
- ``snapshot``: the latest snapshot, same record framing (one record), replaced
  atomically (write tmp, fsync, rename, fsync directory).

Hard state and entries are opaque dicts to this module except that entries
carry "index" and "term" and a snapshot carries "index" (what the node's
Ready documents).

A crash can leave the WAL with a torn or corrupt tail. Replay stops at the
first record whose length or checksum does not hold, and the file is
truncated there: everything before it was fsynced whole, everything after it
was never acknowledged (we fsync before answering), so dropping it is safe.

Group commit: ``persist`` appends every record of one Ready and fsyncs once.
A Ready that only advances the commit index is written without an fsync
(the commit index is volatile in Raft; see ``Storage.prepare``).
When a snapshot is persisted the WAL is compacted: rewritten (atomically) with
the current hard state and only the entries after the snapshot.

Two kinds of snapshot reach ``prepare``, and only one must be durable before
the Ready's messages go out:

- a node's own (it compacted its applied log): every entry it covers is
  already in the WAL, so it is redundant until written. ``prepare`` leaves the
  WAL's entries alone and hands the snapshot back as ``WritePlan.background``;
  the server writes it while it goes on serving (snapshots.py), then calls
  ``snapshot_written`` and compacts the WAL with ``compaction``.
- a leader's, installed by a follower: the WAL does not hold its last entry,
  so the plan carries it as ``WritePlan.install``: the snapshot file, then
  the rewritten WAL, both before anything that follows is acknowledged.

Both files are written as pieces (``jsonstream``), never as one big
``json.dumps``, and ``SnapshotFile`` computes the record's length and CRC as
the pieces go by. The bytes on disk are the same as a single encode would
give, so data directories of format 1 stay readable.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .jsonstream import encode_pieces
from .metrics import Histogram

FORMAT_LINE = "splitbrain-raftkv-storage 1"
WAL_MAGIC = b"RKVWAL1\n"
SNAP_MAGIC = b"RKVSNP1\n"
_HEADER = struct.Struct(">II")
# A record longer than this is certainly garbage from a torn length field,
# not a real entry: stop replay there rather than try to allocate it.
MAX_RECORD_BYTES = 256 * 1024 * 1024


class IncompatibleDataDir(Exception):
    """The data directory was written by another storage format version."""


class DataDirLocked(Exception):
    """Another live process holds this data directory (two nodes on one log would corrupt it)."""


@dataclass
class Recovered:
    """What replaying a data directory found."""

    hard_state: dict | None
    snapshot: dict | None
    entries: list[dict]
    truncated_bytes: int = 0  # bytes of torn / corrupt WAL tail dropped on open


def encode_record(payload: dict) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return _HEADER.pack(len(body), zlib.crc32(body)) + body


def decode_records(data: bytes, start: int) -> tuple[list[dict], int]:
    """Decode records from ``data[start:]``; return them and the offset of the first bad byte.

    The returned offset equals ``len(data)`` when the whole tail is intact.
    """
    records = []
    pos = start
    while pos + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, pos)
        body_start = pos + _HEADER.size
        if length > MAX_RECORD_BYTES or body_start + length > len(data):
            break
        body = data[body_start : body_start + length]
        if zlib.crc32(body) != crc:
            break
        try:
            records.append(json.loads(body))
        except ValueError:
            break  # checksum matched garbage: treat it as the end of good data
        pos = body_start + length
    return records, pos


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


SYNC_EVERY_BYTES = 1 << 20  # a snapshot file being written is fdatasynced after each MiB


class SnapshotFile:
    """A file written whole to ``<path>.tmp`` in pieces, then fsynced and renamed over ``path``.

    With ``record=True`` the pieces are the body of one record (the snapshot
    file): its length and CRC are summed as they go and written into the header
    at the end. Otherwise they are already framed records (a rewritten WAL).
    ``write`` and ``commit`` block (run them on a worker thread); one caller at a time.
    """

    def __init__(self, path: Path, magic: bytes, record: bool):
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")
        self.record = record
        self._f = open(self.tmp, "wb")
        self._f.write(magic)
        self._header_at = len(magic)
        if record:
            self._f.write(_HEADER.pack(0, 0))  # filled in by commit()
        self._length = 0
        self._crc = 0
        self._unsynced = 0

    def write(self, data: bytes) -> None:
        self._f.write(data)
        if self.record:
            self._length += len(data)
            self._crc = zlib.crc32(data, self._crc)
        # Flushed as it goes, as RocksDB's bytes_per_sync: a WAL fsync must not wait behind 30 MB of
        # this file's dirty pages (ext4 commits them in the same journal transaction), or every
        # node's acknowledgements stall at once while they snapshot at the same index (issue 17).
        self._unsynced += len(data)
        if self._unsynced >= SYNC_EVERY_BYTES:
            self._f.flush()
            os.fdatasync(self._f.fileno())
            self._unsynced = 0

    def commit(self) -> None:
        f = self._f
        if self.record:
            if self._length > MAX_RECORD_BYTES:
                self.abort()
                raise ValueError(f"snapshot of {self._length} bytes is over the {MAX_RECORD_BYTES} a record may hold")
            f.seek(self._header_at)
            f.write(_HEADER.pack(self._length, self._crc))
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.replace(self.tmp, self.path)
        _fsync_dir(self.path.parent)

    def abort(self) -> None:
        self._f.close()
        try:
            self.tmp.unlink()
        except FileNotFoundError:
            pass


def _durable_part(hard_state: dict | None) -> dict | None:
    """What of a hard state must be on disk before anything depends on it: term and vote."""
    if hard_state is None:
        return None
    return {k: v for k, v in hard_state.items() if k != "commit"}


def _snapshot_index(snapshot: dict) -> int:
    return snapshot["index"]


@dataclass
class WritePlan:
    """What one persist must write: a WAL append, and perhaps a snapshot (see the module doc)."""

    wal_append: bytes = b""
    # False when the plan only moves the commit index: see Storage.prepare.
    needs_fsync: bool = True
    # An installed snapshot: written (with the compacted WAL) before the plan counts as durable.
    install: dict | None = None
    # The node's own snapshot: written in the background after the append, see snapshot_written.
    background: dict | None = None


class Storage:
    """One node's data directory. Not thread-safe: one caller at a time."""

    def __init__(self, data_dir: str | os.PathLike, fsync: bool = True,
                 clock: Callable[[], float] = time.perf_counter):
        self.dir = Path(data_dir)
        self.fsync_enabled = fsync
        self._clock = clock
        self.fsync_stats = Histogram()
        self.hard_state: dict | None = None
        self.snapshot: dict | None = None
        self.entries: list[dict] = []  # entries after the snapshot, in index order
        self._wal = None
        self._lock = None

    # -- opening -----------------------------------------------------------

    def open(self) -> Recovered:
        """Create or replay the data directory. Raises IncompatibleDataDir."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        self._check_format()
        self.snapshot = self._read_snapshot()
        truncated = self._replay_wal()
        self._wal = open(self.dir / "wal", "ab")
        return Recovered(self.hard_state, self.snapshot, list(self.entries), truncated)

    def _take_lock(self) -> None:
        # flock is released by the kernel when the holder dies, so a SIGKILLed
        # node never leaves a stale lock behind.
        self._lock = open(self.dir / "LOCK", "a")
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise DataDirLocked(f"data directory {self.dir} is in use by another process") from None

    def _check_format(self) -> None:
        fmt = self.dir / "FORMAT"
        if fmt.exists():
            found = fmt.read_text(errors="replace").strip()
            if found != FORMAT_LINE:
                raise IncompatibleDataDir(
                    f"data directory {self.dir} has format {found!r}, this build reads {FORMAT_LINE!r}")
            return
        if any(p.name in ("wal", "snapshot") for p in self.dir.iterdir()):
            raise IncompatibleDataDir(f"data directory {self.dir} has raft files but no FORMAT file")
        _write_atomically(fmt, (FORMAT_LINE + "\n").encode())

    def _read_snapshot(self) -> dict | None:
        path = self.dir / "snapshot"
        if not path.exists():
            return None
        data = path.read_bytes()
        if not data.startswith(SNAP_MAGIC):
            raise IncompatibleDataDir(f"snapshot file {path} has an unknown header")
        records, end = decode_records(data, len(SNAP_MAGIC))
        # The snapshot is replaced atomically, so a bad one is real corruption, not a torn write.
        if len(records) != 1 or end != len(data):
            raise IncompatibleDataDir(f"snapshot file {path} is corrupt")
        return records[0]

    def _replay_wal(self) -> int:
        path = self.dir / "wal"
        if not path.exists():
            _write_atomically(path, WAL_MAGIC)
            return 0
        data = path.read_bytes()
        if len(data) < len(WAL_MAGIC) and WAL_MAGIC.startswith(data):
            _write_atomically(path, WAL_MAGIC)  # crashed while creating it
            return 0
        if not data.startswith(WAL_MAGIC):
            raise IncompatibleDataDir(f"log file {path} has an unknown header")
        records, good_end = decode_records(data, len(WAL_MAGIC))
        for rec in records:
            self._apply(rec)
        if self.snapshot is not None:
            self._drop_covered_entries(self.snapshot)
        dropped = len(data) - good_end
        if dropped:
            with open(path, "r+b") as f:
                f.truncate(good_end)
                f.flush()
                os.fsync(f.fileno())
        return dropped

    # -- in-memory view ------------------------------------------------------

    def _apply(self, rec: dict) -> None:
        kind = rec.get("t")
        if kind == "hs":
            self.hard_state = rec["hs"]
        elif kind == "trunc":
            self._truncate(rec["from"])
        elif kind == "ent":
            self._append(rec["e"])
        else:
            raise ValueError(f"unknown WAL record type {kind!r}")

    def _truncate(self, from_index: int) -> None:
        self.entries = [e for e in self.entries if e["index"] < from_index]

    def _append(self, entry: dict) -> None:
        # An entry overwrites any entry at the same or a later index (Raft never
        # leaves holes, so a rewrite of index i invalidates everything after it).
        while self.entries and self.entries[-1]["index"] >= entry["index"]:
            self.entries.pop()
        self.entries.append(entry)

    def _drop_covered_entries(self, snapshot: dict) -> None:
        idx = _snapshot_index(snapshot)
        self.entries = [e for e in self.entries if e["index"] > idx]

    # -- writing ---------------------------------------------------------------

    def persist(self, hard_state: dict | None = None, truncate_from: int | None = None,
                entries: list[dict] = (), snapshot: dict | None = None) -> None:
        """Make one Ready's state durable at once, a snapshot and its compaction included (tests, tools)."""
        plan = self.prepare(hard_state, truncate_from, entries, snapshot)
        self.write(plan)
        if plan is None:
            return
        if plan.install is not None:
            self.write_files(self.install_files(plan.install))
        if plan.background is not None:
            self.write_files([self.snapshot_file(plan.background)])
            self.snapshot_written(plan.background)
            self.write_files([self.compaction()])

    def prepare(self, hard_state: dict | None = None, truncate_from: int | None = None,
                entries: list[dict] = (), snapshot: dict | None = None) -> WritePlan | None:
        """Apply one Ready to the in-memory view and encode the WAL records it adds.

        Split from ``write`` so the server can encode on its event loop (where
        the node's dicts live) and do the blocking write + fsync on a thread.
        Order as the node's Ready documents: snapshot, truncate, append, hard state.
        """
        if hard_state is None and truncate_from is None and not entries and snapshot is None:
            return None
        install = snapshot is not None and not self._holds(snapshot, entries, truncate_from)
        records = []
        if install:
            self.snapshot = snapshot
            self._drop_covered_entries(snapshot)
        if truncate_from is not None:
            records.append({"t": "trunc", "from": truncate_from})
            self._truncate(truncate_from)
        for e in entries:
            records.append({"t": "ent", "e": e})
            self._append(e)
        needs_fsync = bool(records) or install
        if hard_state is not None:
            records.append({"t": "hs", "hs": hard_state})
            if _durable_part(hard_state) != _durable_part(self.hard_state):
                needs_fsync = True
            self.hard_state = hard_state
        if install:
            # The WAL is rewritten whole (install_files) once the snapshot is durable: these records go
            # into it, not into the old WAL. A crash in between leaves a redundant WAL, never a gap.
            return WritePlan(needs_fsync=True, install=snapshot)
        # A plan that only moves the commit index is written but not fsynced:
        # Raft treats the commit index as volatile (a restarted node learns it
        # again from the leader), so losing it in a crash is harmless and the
        # leader saves one fsync on the path of every client write. The next
        # plan that does need an fsync makes it durable too.
        stale = snapshot is not None and self.snapshot is not None and snapshot["index"] <= self.snapshot["index"]
        return WritePlan(wal_append=b"".join(encode_record(r) for r in records), needs_fsync=needs_fsync,
                         background=None if snapshot is None or stale else snapshot)

    def _holds(self, snapshot: dict, entries, truncate_from: int | None) -> bool:
        """Does the WAL (with this Ready's appends) hold the snapshot's last entry, hence all it covers?"""
        idx, term = snapshot["index"], snapshot["term"]
        if self.snapshot is not None and idx <= self.snapshot["index"]:
            return True  # older than what is on disk: nothing to install
        for e in entries:
            if e["index"] == idx:
                return e["term"] == term
        if truncate_from is not None and idx >= truncate_from:
            return False
        if self.entries and self.entries[0]["index"] <= idx <= self.entries[-1]["index"]:
            return self.entries[idx - self.entries[0]["index"]]["term"] == term
        return False

    def write(self, plan: WritePlan | None) -> None:
        """Do the blocking WAL append of a prepared plan; safe to run on a worker thread.

        An install's files are written by the caller after this (``install_files``).
        """
        if plan is None or plan.install is not None:
            return
        self._wal.write(plan.wal_append)
        if plan.needs_fsync:
            self._sync(self._wal)
        else:
            self._wal.flush()

    # Snapshot files: each is a SnapshotFile and the pieces to write to it. The caller decides how
    # (write_files at once, or a batch at a time between event-loop turns: snapshots.py).

    def snapshot_file(self, snapshot: dict):
        return SnapshotFile(self.dir / "snapshot", SNAP_MAGIC, record=True), encode_pieces(snapshot)

    def compaction(self):
        """The WAL rewritten as the hard state plus the entries after the snapshot on disk."""
        records = [{"t": "hs", "hs": self.hard_state}] if self.hard_state is not None else []
        records.extend({"t": "ent", "e": e} for e in self.entries)
        return SnapshotFile(self.dir / "wal", WAL_MAGIC, record=False), (encode_record(r) for r in records)

    def install_files(self, snapshot: dict) -> list:
        return [self.snapshot_file(snapshot), self.compaction()]

    def snapshot_written(self, snapshot: dict) -> bool:
        """A background snapshot is durable: it now stands for the entries it covers. False if it is stale."""
        if self.snapshot is not None and snapshot["index"] <= self.snapshot["index"]:
            return False
        self.snapshot = snapshot
        self._drop_covered_entries(snapshot)
        return True

    def replace_wal(self, file: SnapshotFile) -> None:
        """Swap in a WAL written by ``compaction`` (blocking: the old one is closed, the new one opened)."""
        started = self._clock()
        self._wal.close()
        file.commit()
        self._wal = open(self.dir / "wal", "ab")
        self.fsync_stats.observe(self._clock() - started)

    def write_files(self, files) -> None:
        """Write and commit (file, pieces) pairs in order, all at once."""
        for file, pieces in files:
            for piece in pieces:
                file.write(piece)
            if file.path.name == "wal":
                self.replace_wal(file)
            else:
                file.commit()

    def sync_wal(self) -> None:
        """fsync what the WAL has had written without one (a commit-only plan); safe on a worker thread."""
        if self._wal is not None:
            self._sync(self._wal)

    def _sync(self, f) -> None:
        f.flush()
        if not self.fsync_enabled:
            return
        started = self._clock()
        os.fsync(f.fileno())
        self.fsync_stats.observe(self._clock() - started)

    def close(self) -> None:
        if self._wal is not None:
            self._wal.close()
            self._wal = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None
