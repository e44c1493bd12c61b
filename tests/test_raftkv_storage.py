"""The raftkv data directory: what was fsynced comes back, torn or corrupt tails are cut off."""

import pytest

from targets.raftkv.storage import (
    FORMAT_LINE,
    WAL_MAGIC,
    DataDirLocked,
    IncompatibleDataDir,
    Storage,
)


def entry(index, term, value=None):
    return {"index": index, "term": term, "op": {"f": "put", "key": "k", "value": value or index}}


def reopen(path):
    s = Storage(path, fsync=False)
    return s, s.open()


def test_hard_state_and_entries_survive_a_restart(tmp_path):
    s, rec = reopen(tmp_path)
    assert rec.hard_state is None and rec.snapshot is None and rec.entries == []
    s.persist(hard_state={"term": 3, "vote": "n2"}, entries=[entry(1, 1), entry(2, 3)])
    s.persist(hard_state={"term": 4, "vote": None})
    s.close()
    _, rec = reopen(tmp_path)
    assert rec.hard_state == {"term": 4, "vote": None}
    assert rec.entries == [entry(1, 1), entry(2, 3)]
    assert rec.truncated_bytes == 0


def test_truncation_and_overwrite_replay_to_the_same_log(tmp_path):
    s, _ = reopen(tmp_path)
    s.persist(entries=[entry(1, 1), entry(2, 1), entry(3, 1)])
    s.persist(truncate_from=2, entries=[entry(2, 2)])
    s.persist(entries=[entry(3, 2), entry(4, 2)])
    s.persist(entries=[entry(4, 3)])  # overwrite without an explicit truncate
    s.close()
    _, rec = reopen(tmp_path)
    assert [(e["index"], e["term"]) for e in rec.entries] == [(1, 1), (2, 2), (3, 2), (4, 3)]


def test_a_torn_tail_is_truncated_on_restart(tmp_path):
    s, _ = reopen(tmp_path)
    s.persist(hard_state={"term": 1, "vote": "n1"}, entries=[entry(1, 1)])
    s.close()
    good_size = (tmp_path / "wal").stat().st_size
    s, _ = reopen(tmp_path)
    s.persist(entries=[entry(2, 1)])
    s.close()
    wal = tmp_path / "wal"
    wal.write_bytes(wal.read_bytes()[:-5])  # the crash tore the last record
    s, rec = reopen(tmp_path)
    assert [e["index"] for e in rec.entries] == [1]
    assert rec.truncated_bytes > 0
    assert wal.stat().st_size == good_size
    # and the log is usable afterwards
    s.persist(entries=[entry(2, 1, "again")])
    s.close()
    _, rec = reopen(tmp_path)
    assert rec.entries[-1] == entry(2, 1, "again")


def test_a_record_with_a_bad_checksum_ends_the_log(tmp_path):
    s, _ = reopen(tmp_path)
    s.persist(entries=[entry(1, 1)])
    s.persist(entries=[entry(2, 1)])
    s.close()
    wal = tmp_path / "wal"
    data = bytearray(wal.read_bytes())
    data[-2] ^= 0xFF  # flip a byte inside the last record's JSON body
    wal.write_bytes(bytes(data))
    _, rec = reopen(tmp_path)
    assert [e["index"] for e in rec.entries] == [1]
    assert rec.truncated_bytes > 0


def test_garbage_length_field_is_treated_as_a_torn_tail(tmp_path):
    s, _ = reopen(tmp_path)
    s.persist(entries=[entry(1, 1)])
    s.close()
    wal = tmp_path / "wal"
    wal.write_bytes(wal.read_bytes() + b"\xff\xff\xff\xff\x00\x00")
    _, rec = reopen(tmp_path)
    assert [e["index"] for e in rec.entries] == [1]
    assert rec.truncated_bytes == 6


def test_snapshot_compacts_the_log_and_survives_a_restart(tmp_path):
    s, _ = reopen(tmp_path)
    s.persist(hard_state={"term": 2, "vote": "n1"}, entries=[entry(i, 2) for i in range(1, 11)])
    size_before = (tmp_path / "wal").stat().st_size
    snap = {"index": 8, "term": 2, "data": {"k": 8}}
    s.persist(snapshot=snap)
    assert (tmp_path / "wal").stat().st_size < size_before
    s.persist(entries=[entry(11, 2)])
    s.close()
    assert not (tmp_path / "snapshot.tmp").exists()
    _, rec = reopen(tmp_path)
    assert rec.snapshot == snap
    assert rec.hard_state == {"term": 2, "vote": "n1"}
    assert [e["index"] for e in rec.entries] == [9, 10, 11]


def test_an_installed_snapshot_is_written_before_the_entries_of_the_same_ready(tmp_path):
    s, _ = reopen(tmp_path)
    s.persist(entries=[entry(i, 1) for i in range(1, 6)])
    # a follower installs a leader's snapshot and, in the same Ready, appends after it
    s.persist(snapshot={"index": 7, "term": 2, "state": {}}, truncate_from=8,
              entries=[entry(8, 2)], hard_state={"term": 2, "voted_for": None, "commit": 8})
    s.close()
    _, rec = reopen(tmp_path)
    assert rec.snapshot["index"] == 7
    assert [e["index"] for e in rec.entries] == [8]
    assert rec.hard_state["commit"] == 8


def test_a_data_dir_from_another_version_is_refused(tmp_path):
    (tmp_path / "FORMAT").write_text("splitbrain-raftkv-storage 99\n")
    with pytest.raises(IncompatibleDataDir, match="format"):
        Storage(tmp_path).open()


def test_a_wal_without_a_format_file_is_refused(tmp_path):
    (tmp_path / "wal").write_bytes(WAL_MAGIC)
    with pytest.raises(IncompatibleDataDir):
        Storage(tmp_path).open()


def test_a_wal_with_a_foreign_header_is_refused(tmp_path):
    (tmp_path / "FORMAT").write_text(FORMAT_LINE + "\n")
    (tmp_path / "wal").write_bytes(b"SOMETHING ELSE ENTIRELY")
    with pytest.raises(IncompatibleDataDir, match="header"):
        Storage(tmp_path).open()


def test_fsync_latency_is_recorded(tmp_path):
    s = Storage(tmp_path, fsync=True)
    s.open()
    s.persist(hard_state={"term": 1, "vote": None})
    assert s.fsync_stats.count == 1
    assert s.fsync_stats.counts[-1] == 1


def test_only_a_commit_index_move_skips_the_fsync(tmp_path):
    s = Storage(tmp_path, fsync=True)
    s.open()

    def needs_fsync(**ready):
        plan = s.prepare(**ready)
        s.write(plan)
        return plan.needs_fsync

    assert needs_fsync(hard_state={"term": 1, "voted_for": "n1", "commit": 0})
    assert not needs_fsync(hard_state={"term": 1, "voted_for": "n1", "commit": 5})
    assert s.fsync_stats.count == 1
    assert needs_fsync(hard_state={"term": 2, "voted_for": None, "commit": 5})
    assert needs_fsync(entries=[entry(1, 2)])
    s.close()
    _, rec = reopen(tmp_path)  # written, just not forced: a clean restart still sees it
    assert rec.hard_state == {"term": 2, "voted_for": None, "commit": 5}


def test_a_data_dir_in_use_by_another_node_is_refused_until_it_closes(tmp_path):
    first = Storage(tmp_path, fsync=False)
    first.open()
    with pytest.raises(DataDirLocked, match="in use"):
        Storage(tmp_path).open()
    first.close()
    Storage(tmp_path).open()


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from targets.raftkv.storage import decode_records, encode_record  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 10**6), max_size=5), st.binary(max_size=40), st.integers(0, 200))
def test_whatever_follows_good_records_the_good_records_survive(values, garbage, cut):
    good = b"".join(encode_record({"t": "ent", "e": {"index": i, "term": v}})
                    for i, v in enumerate(values))
    data = good + garbage
    records, end = decode_records(data, 0)
    assert [r["e"]["term"] for r in records[: len(values)]] == values
    assert len(good) <= end <= len(data)
    # a torn write (any prefix) decodes to a prefix of the records
    torn = good[: min(cut, len(good))]
    records, end = decode_records(torn, 0)
    assert [r["e"]["term"] for r in records] == values[: len(records)]
    assert end <= len(torn)
