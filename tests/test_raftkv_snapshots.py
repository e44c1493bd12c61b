"""Snapshots of a big state: written in pieces with the loop running between them, read back equal, format unchanged."""

import asyncio
import time

from targets.raftkv.snapshots import SnapshotWriter
from targets.raftkv.storage import SNAP_MAGIC, Storage, encode_record

VALUE = "s" * (255 * 1024)  # just under the client body limit, as the big-state attack writes


def entry(index, term=1):
    return {"index": index, "term": term, "kind": "op", "data": {"op": {"f": "put", "key": f"k{index}", "value": 1}}}


def big_snapshot(index, term=1, keys=80):
    return {"index": index, "term": term, "members": ["n1", "n2", "n3"],
            "state": {"data": {f"big-{i}": VALUE + str(i) for i in range(keys)}, "dedupe": {"r1": [200, {}]}}}


def opened(path) -> Storage:
    s = Storage(path)
    s.open()
    return s


def test_a_big_snapshot_is_written_as_one_plain_record_and_read_back_equal(tmp_path):
    s = opened(tmp_path)
    s.persist(hard_state={"term": 1, "voted_for": "n1", "commit": 12}, entries=[entry(i) for i in range(1, 13)])
    snap = big_snapshot(10)
    s.persist(snapshot=snap)  # the WAL holds entry 10: the node's own snapshot, compacted at once by persist
    s.close()
    data = (tmp_path / "snapshot").read_bytes()
    assert len(data) > 20_000_000
    # The very bytes one json.dumps gave before pieces: format 1 directories stay readable both ways.
    assert data == SNAP_MAGIC + encode_record(snap)
    s = Storage(tmp_path)
    rec = s.open()
    assert rec.snapshot == snap
    assert [e["index"] for e in rec.entries] == [11, 12]
    s.close()


def test_the_nodes_own_snapshot_leaves_the_wal_whole_until_it_is_written(tmp_path):
    s = opened(tmp_path)
    s.persist(hard_state={"term": 1, "voted_for": "n1", "commit": 5}, entries=[entry(i) for i in range(1, 6)])
    plan = s.prepare(snapshot={"index": 4, "term": 1, "state": {"data": {"k": 1}}}, entries=[entry(6)])
    assert plan.background is not None and plan.install is None
    s.write(plan)
    s.close()  # a crash before the background write: nothing is lost, the WAL still has 1..6
    s = Storage(tmp_path)
    rec = s.open()
    assert rec.snapshot is None and [e["index"] for e in rec.entries] == [1, 2, 3, 4, 5, 6]
    s.close()


def test_a_leaders_snapshot_is_an_install(tmp_path):
    s = opened(tmp_path)
    s.persist(entries=[entry(i) for i in range(1, 4)])
    plan = s.prepare(snapshot={"index": 9, "term": 2, "state": {}}, truncate_from=10, entries=[entry(10, 2)])
    assert plan.install is not None and plan.background is None and plan.needs_fsync
    s.close()


def run_with_observer(coro_factory):
    """Run coro_factory() on a loop beside a task that counts its turns and the longest gap between them."""
    stats = {"turns": 0, "max_gap": 0.0}

    async def main():
        stop = asyncio.Event()

        async def observer():
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(0)
                now = time.perf_counter()
                stats["turns"] += 1
                stats["max_gap"] = max(stats["max_gap"], now - last)
                last = now

        obs = asyncio.create_task(observer())
        try:
            return await coro_factory()
        finally:
            stop.set()
            await obs

    return asyncio.run(main()), stats


def test_a_background_snapshot_of_a_big_state_gives_the_loop_a_turn_between_batches(tmp_path):
    s = opened(tmp_path)
    s.persist(hard_state={"term": 1, "voted_for": "n1", "commit": 30}, entries=[entry(i) for i in range(1, 31)])
    snap = big_snapshot(30)

    async def write():
        written = asyncio.Event()
        w = SnapshotWriter(s, lambda snapshot: written.set())
        w.start()
        plan = s.prepare(snapshot=snap)
        s.write(plan)
        w.submit(plan.background)
        await written.wait()
        await w.compact_wal()
        await w.stop()
        return w.batches_written

    batches, stats = run_with_observer(write)
    # Structural, not timed: a single dumps would have given the observer no turn at all while it ran.
    assert batches >= 60
    assert stats["turns"] >= batches
    print(f"\n{batches} batches; the loop's longest gap between turns while writing: {stats['max_gap'] * 1000:.1f} ms")
    s.close()
    s = Storage(tmp_path)
    rec = s.open()
    assert rec.snapshot == snap and rec.entries == []
    s.close()


def test_an_install_stops_a_background_snapshot_in_progress_and_wins(tmp_path):
    s = opened(tmp_path)
    s.persist(hard_state={"term": 1, "voted_for": "n1", "commit": 30}, entries=[entry(i) for i in range(1, 31)])
    mine, leaders = big_snapshot(30), big_snapshot(50, term=2, keys=3)
    called = []

    async def race():
        w = SnapshotWriter(s, called.append)
        w.start()
        plan = s.prepare(snapshot=mine)
        s.write(plan)
        w.submit(plan.background)
        while w.batches_written < 3:  # the background write is under way
            await asyncio.sleep(0)
        install = s.prepare(snapshot=leaders, truncate_from=51)
        assert install.install is not None
        await w.install(install.install)
        await asyncio.sleep(0.05)
        await w.stop()

    asyncio.run(race())
    assert called == []  # the older snapshot never became the durable one
    assert not (tmp_path / "snapshot.tmp").exists()
    s.close()
    s = Storage(tmp_path)
    rec = s.open()
    assert rec.snapshot == leaders and rec.entries == []
    s.close()
