"""The kill, pause and clock families against real raftkv processes on loopback (no Docker), driven as a run does.

`targets.raftkv.loopback.LocalCluster` is the nemesis's ClusterControl here:
each op's evidence must show it took effect on the processes themselves, and
heal_all must leave every node running and serving. The network families
cannot work without a network namespace per node: they are refused before a run.
"""

from __future__ import annotations

import json
import time

import pytest

from nemesis.core import Nemesis
from nemesis.errors import NemesisError
from targets.raftkv.loopback import LocalCluster
from targets.raftkv.plugin import RaftKV


@pytest.mark.cluster
def test_kill_pause_and_clock_take_effect_and_heal_all_brings_every_node_back(tmp_path):
    with LocalCluster(3, base_dir=str(tmp_path)) as c:
        c.start_all()
        nem = Nemesis(c, RaftKV(), ["kill", "pause", "clock"])
        assert nem.problems() == []
        c.wait_for_leader(10.0)

        # kill the leader: SIGKILL, the process is gone (a signal's status, as Docker gives it) and silent
        done = nem.invoke({"f": "kill", "value": {"nodes": ["leader"]}})
        [victim] = done["value"]
        assert done["evidence"]["nodes"][victim] == {"state": "exited", "exit_code": 137, "answers": False}
        assert done["fault"]["leader_nodes"] == [victim]
        assert c.procs[victim].returncode == -9 and c.probe(victim) is None
        # ... and its stop restarts it, serving again
        done = nem.invoke({"f": "start", "value": {"nodes": [victim]}})
        assert done["value"] == [victim] and done["evidence"]["verified"]
        assert done["evidence"]["nodes"][victim]["answers"] and c.probe(victim) is not None

        # pause: SIGSTOP, stopped as the kernel sees it, silent, not exited
        paused, skewed = [n for n in c.ids if n != victim][:2]
        done = nem.invoke({"f": "pause", "value": {"nodes": [paused]}})
        assert done["evidence"] == {"verified": True, "nodes": {paused: {"state": "paused", "answers": False}}}
        assert c.states()[paused] == "paused" and c.exit_codes()[paused] is None

        # clock: +5 s and twice as fast on a running node; the node's own /status reports both
        done = nem.invoke({"f": "bump-clock", "value": {"nodes": [skewed], "delta_ms": 5000, "rate": 2.0}})
        [ev] = done["evidence"]["nodes"]
        assert ev["verified"] and abs(ev["observed_skew_s"] - 5.0) <= 0.5 and ev["rate_verified"]
        assert json.loads(c.clock_file(skewed).read_text()) == {"offset_s": 5.0, "rate": 2.0}
        status = c.probe(skewed)
        assert abs(status["wall_time"] - time.time() - 5.0) < 1.0 and status["clock_rate"] == 2.0
        # a skew for the paused node is written in place, and checked once it runs again
        done = nem.invoke({"f": "bump-clock", "value": {"nodes": [paused], "delta_ms": -3000}})
        [ev] = done["evidence"]["nodes"]
        assert not ev["verified"] and "paused" in ev["why"]
        assert json.loads(c.clock_file(paused).read_text())["offset_s"] == -3.0
        # a strobe needs a loop inside the node: not on loopback, and it says why
        with pytest.raises(NemesisError, match="Docker backend"):
            nem.invoke({"f": "strobe-clock", "value": {"nodes": [skewed], "delta_ms": 200, "period_ms": 50}})

        # leave one more node down, so the heal has a kill, a pause and two clocks to undo
        nem.invoke({"f": "kill", "value": {"nodes": [victim]}})
        assert c.states()[victim] == "exited"

        healed = nem.heal_all()
        assert healed["value"] == ["reset-clock", "resume", "start"]
        assert healed["evidence"]["resume"]["verified"] and healed["evidence"]["start"]["verified"]
        assert healed["evidence"]["final-check"]["silent_nodes"] == []
        assert c.states() == {n: "running" for n in c.ids}
        statuses = c.probe_all()
        assert all(statuses.values()), statuses
        for s in statuses.values():
            assert abs(s["wall_time"] - time.time()) < 1.0 and s["clock_rate"] == 1.0
        assert nem.current_faults == []
        assert c.wait_for_leader(10.0)


@pytest.mark.parametrize("fault", ["partition", "loss", "delay", "duplicate", "reorder"])
def test_a_network_fault_is_refused_on_loopback_with_one_line(tmp_path, fault):
    with LocalCluster(3, base_dir=str(tmp_path)) as c:  # no process needed: refused before anything starts
        problems = Nemesis(c, RaftKV(), [fault, "kill"]).problems()
        with pytest.raises(NotImplementedError, match="no network namespace"):
            c.exec_netns("n1", ["iptables", "-S"])
    [line] = problems
    assert line.startswith(f"{fault}: ") and "share one network" in line and "\n" not in line
