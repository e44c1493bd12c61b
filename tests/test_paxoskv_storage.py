"""paxoskv's slot storage: a slot written again replaces that slot only, the promise survives a
restart, and a raftkv data directory is refused rather than misread."""

from __future__ import annotations

import pytest

from targets.paxoskv.storage import IncompatibleDataDir, SlotStorage
from targets.raftkv.storage import Storage


def slot(i: int, term: int, ballot: int, value) -> dict:
    return {"index": i, "term": term, "ballot": ballot, "kind": "op", "data": {"op": {"f": "put", "key": "k",
                                                                                        "value": value}}}


def test_a_slot_accepted_again_keeps_the_slots_after_it(tmp_path):
    s = SlotStorage(tmp_path)
    s.open()
    s.persist(hard_state={"term": 1, "commit": 0}, entries=[slot(1, 1, 1, "a"), slot(2, 1, 1, "b"), slot(4, 1, 1, "d")])
    s.persist(hard_state={"term": 5, "commit": 0}, entries=[slot(2, 5, 5, "B")])  # a higher ballot, slot 2 only
    s.close()
    rec = SlotStorage(tmp_path).open()
    assert rec.hard_state == {"term": 5, "commit": 0}
    assert [(e["index"], e["data"]["op"]["value"]) for e in rec.entries] == [(1, "a"), (2, "B"), (4, "d")]


def test_a_snapshot_over_a_gap_is_installed_not_assumed_covered(tmp_path):
    s = SlotStorage(tmp_path)
    s.open()
    s.persist(entries=[slot(1, 1, 1, "a"), slot(3, 1, 1, "c")])
    snap = {"index": 3, "term": 1, "state": {"data": {}, "dedupe": {}}, "members": ["n1"]}
    # Slot 2 is missing, so the WAL does not stand for the snapshot: it must be written before acks.
    assert s.prepare(snapshot=snap).install == snap
    s.close()


def test_a_raftkv_data_directory_is_refused(tmp_path):
    raft = Storage(tmp_path)
    raft.open()
    raft.close()
    with pytest.raises(IncompatibleDataDir, match="splitbrain-raftkv-storage"):
        SlotStorage(tmp_path).open()
