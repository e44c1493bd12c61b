"""The paxoskv target as the harness sees it: registered by name, its own node program and image,
raftkv's options checked the same way, its bugs and failpoints, and no impostor."""

from __future__ import annotations

from targets.base import ClusterLayout, NodeAddress, TargetOptions, option_problems
from targets.registry import get_target, target_names


def layout() -> ClusterLayout:
    return ClusterLayout(tuple(NodeAddress(f"n{i}", f"10.9.0.{i}") for i in (1, 2, 3)), 7000, 8000)


def test_paxoskv_is_a_built_in_target_with_its_own_node_program():
    assert "paxoskv" in target_names()
    t = get_target("paxoskv")
    cmd = t.node_command("n2", layout(), TargetOptions(bugs=("ignore-accepted",), settings={"lease_reads": True}))
    assert cmd[:4] == ["python3", "-u", "-m", "targets.paxoskv"]
    assert cmd[cmd.index("--id") + 1] == "n2" and "--lease-reads" in cmd and "--failpoints" in cmd
    assert cmd[cmd.index("--bug") + 1] == "ignore-accepted"


def test_its_image_holds_the_node_sources_and_none_of_the_tools():
    files = [dest for dest, _ in get_target("paxoskv").image_recipe().files]
    assert "targets/paxoskv/core.py" in files and "targets/raftkv/server.py" in files
    assert not any(f.endswith(("plugin.py", "sim.py", "loopback.py", "README.md")) for f in files)


def test_bugs_failpoints_and_options_are_paxoskvs():
    t = get_target("paxoskv")
    assert set(t.bugs()) == {"ignore-accepted", "promise-not-persisted", "stale-lease-read"}
    assert set(t.failpoints()) == {"crash-after-vote"}
    assert option_problems(t, {"election_timeout": "150-300", "heartbeat": 50}) == []
    [problem] = option_problems(t, {"election_timeot": "150-300"})
    assert "paxoskv" in problem and "election_timeout" in problem


def test_the_impostor_fault_is_refused_for_want_of_a_rogue():
    t = get_target("paxoskv")
    assert not callable(getattr(t, "impostor", None))
    assert "HMAC" in t.peer_auth()
