"""Durable paxoskv state: raftkv's checksummed WAL and snapshot file, with slots instead of a Raft log.

The framing, fsync discipline, group commit, torn-tail recovery and
snapshot files are raftkv's (targets/raftkv/storage.py). What differs is what
an entry record means: the value an acceptor accepted in one slot, with the
ballot it accepted it in. A later record for the same slot replaces that slot
only (an acceptor that accepts a higher ballot's value for slot 5 keeps what
it accepted in slot 6), where Raft's log drops every later entry; and slots
may have gaps, so a snapshot is covered by the WAL only if every slot up to
its index is there. The hard state is {"term": the promised ballot,
"commit"}: a changed promise is fsynced before any answer leaves.
"""

from __future__ import annotations

import bisect

from targets.raftkv.storage import DataDirLocked, IncompatibleDataDir, Recovered, Storage

FORMAT_LINE = "splitbrain-paxoskv-storage 1"


class SlotStorage(Storage):
    format_line = FORMAT_LINE

    def _indexes(self) -> list[int]:
        return [e["index"] for e in self.entries]

    def _append(self, entry: dict) -> None:
        # Entries stay sorted by slot; a slot written again is replaced where it is.
        if not self.entries or self.entries[-1]["index"] < entry["index"]:
            self.entries.append(entry)
            return
        indexes = self._indexes()
        at = bisect.bisect_left(indexes, entry["index"])
        if at < len(indexes) and indexes[at] == entry["index"]:
            self.entries[at] = entry
        else:
            self.entries.insert(at, entry)

    def _holds(self, snapshot: dict, entries, truncate_from: int | None) -> bool:
        """Does the WAL (with this Ready's slots) hold every slot the snapshot covers, at its value?"""
        idx = snapshot["index"]
        if self.snapshot is not None and idx <= self.snapshot["index"]:
            return True
        have = {e["index"]: e for e in self.entries}
        have.update({e["index"]: e for e in entries})
        start = self.snapshot["index"] + 1 if self.snapshot is not None else 1
        if any(i not in have for i in range(start, idx + 1)):
            return False
        return have[idx]["term"] == snapshot["term"]


__all__ = ["DataDirLocked", "FORMAT_LINE", "IncompatibleDataDir", "Recovered", "SlotStorage"]
