"""raftkv's crash-before-send-first-write failpoint on real processes (loopback, no Docker), and the
first-write-crash family driving them as a run would."""

from __future__ import annotations

import time

import pytest

from nemesis.core import Nemesis
from nemesis.first_write_crash import CRASH_EXIT_CODE, FAILPOINT, FirstWriteCrash
from targets.raftkv.loopback import LocalCluster
from targets.raftkv.plugin import RaftKV

pytestmark = pytest.mark.cluster


def _exit_code(c: LocalCluster, node: str, timeout: float = 5.0) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = c.exit_codes()[node]
        if code is not None:
            return code
        time.sleep(0.02)
    return None


@pytest.mark.parametrize("bugs", [(), ("commit-old-term",)])
def test_an_armed_leader_dies_with_its_client_entry_on_its_own_disk_only(tmp_path, bugs):
    extra = ("--failpoints", *(a for b in bugs for a in ("--bug", b)))
    with LocalCluster(3, base_dir=str(tmp_path), extra_args=extra) as c:
        c.start_all()
        leader = c.wait_for_leader(10.0)
        time.sleep(0.3)  # the followers hold everything the leader has (its no-op, if any)
        before = {n: c.status(n)["last_log_index"] for n in c.ids}
        assert c.set_failpoint(leader, FAILPOINT, True)
        with pytest.raises(OSError):  # the connection dies with the leader: no answer at all
            c.client(leader, timeout=3.0).put("k", 1)
        assert _exit_code(c, leader) == CRASH_EXIT_CODE
        others = [n for n in c.ids if n != leader]
        # The entry never left: the followers' logs did not grow.
        assert {n: c.status(n)["last_log_index"] for n in others} == {n: before[n] for n in others}
        assert f"failpoint {FAILPOINT}: leader of term" in c.log_tail(leader, 50)
        # It was on the leader's disk: restarted (and no longer armed), it still holds it.
        c.start(leader)
        c.wait_until_serving(leader)
        assert c.status(leader)["last_log_index"] == before[leader] + 1


def test_the_family_crashes_leaders_in_its_window_and_leaves_every_node_running(tmp_path):
    with LocalCluster(3, base_dir=str(tmp_path), extra_args=("--failpoints",)) as c:
        c.start_all()
        c.wait_for_leader(10.0)
        fault = FirstWriteCrash(Nemesis(c, RaftKV(), ["first-write-crash"]).ctx)
        stop = time.monotonic() + 6.0
        writer_errors = []

        def write_while(until):
            i = 0
            while time.monotonic() < until:
                lead = c.leader()
                if lead is None:
                    time.sleep(0.05)
                    continue
                try:
                    c.client(lead, timeout=0.5).put("k", i)
                except OSError as e:
                    writer_errors.append(e)
                i += 1
                time.sleep(0.02)

        import threading

        t = threading.Thread(target=write_while, args=(stop,), daemon=True)
        t.start()
        value, evidence = fault.start(base_s=0.3, window_s=3.0)
        t.join()
        assert evidence["verified"]
        assert value["crashes"], value
        assert all(x["exit_code"] == CRASH_EXIT_CODE for x in value["crashes"])
        assert [x["down_s"] for x in value["crashes"]] == [round(0.3 * k, 3)
                                                          for k in range(1, len(value["crashes"]) + 1)]
        fault.stop()
        assert all(p.poll() is None for p in c.procs.values())
        assert not fault.armed
