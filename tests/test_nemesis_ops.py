"""Nemesis operations are validated before anything is touched, and every schedule op is understood."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nemesis.core import OPS, Nemesis, validate_op
from nemesis.errors import NemesisOpError
from nemesis.schedule import make_schedule

NODES = ["n1", "n2", "n3", "n4", "n5"]


@pytest.mark.parametrize(
    "op",
    [
        {"f": "explode"},
        {"value": 1},
        {"f": "start-partition", "value": {"grudge": "triangle"}},
        {"f": "kill", "value": "n9"},
        {"f": "kill", "value": None},
        {"f": "pause", "value": {"nodes": []}},
        {"f": "bump-clock", "value": {"nodes": ["n1"], "delta_ms": "soon"}},
        {"f": "bump-clock", "value": {"nodes": ["n1"], "delta_ms": 5, "rate": 0}},
        {"f": "bump-clock", "value": {"n7": 3.0}},
        {"f": "strobe-clock", "value": {"nodes": ["n1"], "period_ms": 0}},
        {"f": "start-loss", "value": 1.5},
        {"f": "start-loss", "value": {"nodes": ["n1"], "probability": 0}},
        {"f": "start-delay", "value": {"nodes": ["n1"], "delay_ms": -5}},
        {"f": "start-duplicate", "value": {"probability": 2}},
    ],
)
def test_malformed_ops_are_refused_with_a_reason(op):
    with pytest.raises(NemesisOpError):
        validate_op(op, NODES)


def test_symbolic_nodes_and_shorthands_are_accepted():
    assert validate_op({"f": "kill", "value": "leader"}, NODES)["nodes"] == ["leader"]
    assert validate_op({"f": "kill", "value": {"nodes": ["n2", "n3"]}}, NODES)["nodes"] == ["n2", "n3"]
    assert validate_op({"f": "start"}, NODES)["nodes"] == []
    bump = validate_op({"f": "bump-clock", "value": {"n1": 5.0}}, NODES)
    assert bump["absolute"] == {"n1": 5.0}
    rate = validate_op({"f": "clock-rate", "value": {"nodes": ["n2"], "rate": 2.0}}, NODES)
    assert rate["f"] == "bump-clock" and rate["rate"] == 2.0 and rate["delta_s"] == 0
    loss = validate_op({"f": "start-loss", "value": 0.2}, NODES)
    assert loss["nodes"] == NODES and loss["probability"] == 0.2


@pytest.mark.parametrize("seed", range(20))
def test_every_op_the_schedule_emits_is_valid(seed):
    plan = make_schedule(seed, ["partition", "kill", "pause", "clock", "loss", "delay", "duplicate", "reorder"],
                         NODES, 1.0, 60.0)
    assert plan
    for step in plan:
        validate_op(step.op(), NODES)


class FakeTarget:
    name = "fake"
    peer_port = 1

    def __init__(self, clock):
        self._clock = clock

    def clock_control(self):
        return self._clock

    def unsupported_faults(self, faults):
        return ["clock: no clock control"] if "clock" in faults and self._clock is None else []


class FakeCluster:
    node_ids = NODES
    ips = {n: f"10.0.0.{i}" for i, n in enumerate(NODES, 11)}


def test_problems_name_what_the_host_or_target_cannot_do(monkeypatch):
    import nemesis.netem as netem
    import nemesis.partition as partition

    monkeypatch.setattr(netem, "netem_problem", lambda: "this kernel has no netem qdisc")
    monkeypatch.setattr(partition, "iptables_problem", lambda: None)
    nem = Nemesis(FakeCluster(), FakeTarget(None), ["partition", "clock", "delay", "reorder"])
    problems = nem.problems()
    assert any(p.startswith("clock") for p in problems)
    assert any(p.startswith("delay needs the netem qdisc") for p in problems)
    assert any(p.startswith("reorder") for p in problems)
    assert not any(p.startswith("partition") for p in problems)


def test_nothing_to_refuse_when_everything_is_available(monkeypatch):
    import nemesis.netem as netem
    import nemesis.partition as partition

    monkeypatch.setattr(netem, "netem_problem", lambda: None)
    monkeypatch.setattr(partition, "iptables_problem", lambda: None)
    nem = Nemesis(FakeCluster(), FakeTarget("clock-file"), ["partition", "kill", "pause", "clock", "loss", "delay"])
    assert nem.problems() == []
    assert nem.current_faults == []


def test_this_kernels_netem_probe_agrees_with_a_qdisc_actually_installed():
    """Ground truth beside the probe: add netem in a fresh network namespace and list it."""
    import os
    import shutil
    import subprocess

    from nemesis.netem import netem_problem

    netem_problem.cache_clear()
    answer = netem_problem()
    tc, unshare = shutil.which("tc"), shutil.which("unshare")
    if not (os.geteuid() == 0 and tc and unshare):
        assert answer == "cannot probe for netem here (needs root, tc and unshare on the harness host)"
        return
    shown = subprocess.run([unshare, "--net", "sh", "-c", f"{tc} qdisc add dev lo root netem delay 1ms && "
                            f"{tc} qdisc show dev lo"], capture_output=True, text=True, timeout=10)
    installed = shown.returncode == 0 and "netem" in shown.stdout
    assert (answer is None) == installed, (answer, shown.stdout, shown.stderr)
    if answer is not None:
        assert answer.startswith("this kernel has no netem qdisc (tc says: ")


def test_the_netem_probe_reports_what_tc_says_when_it_fails(tmp_path, monkeypatch):
    import os
    import stat

    from nemesis import netem

    def fake(name: str, body: str) -> None:
        p = tmp_path / name
        p.write_text("#!/bin/sh\n" + body)
        p.chmod(p.stat().st_mode | stat.S_IEXEC)

    fake("unshare", 'shift; exec "$@"\n')  # --net dropped: run tc directly
    fake("tc", 'echo "Error: Specified qdisc kind is unknown." >&2; exit 2\n')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    netem.netem_problem.cache_clear()
    try:
        assert netem.netem_problem() == "this kernel has no netem qdisc (tc says: Error: Specified qdisc kind is unknown.)"
        fake("tc", "exit 0\n")
        netem.netem_problem.cache_clear()
        assert netem.netem_problem() is None
        monkeypatch.setattr(os, "geteuid", lambda: 1000)
        netem.netem_problem.cache_clear()
        assert netem.netem_problem().startswith("cannot probe for netem here")
    finally:
        netem.netem_problem.cache_clear()


class SilentCluster(FakeCluster):
    """A cluster whose iptables 'works' but changes nothing: every probe still connects."""

    def __init__(self):
        self.commands: list[tuple[str, str]] = []

    def state(self, node):
        return "running"

    def states(self):
        return {n: "running" for n in NODES}

    def exec_netns(self, node, cmd):
        self.commands.append((node, cmd[-1]))
        script = cmd[-1]
        if "iptables-restore" in script:  # chain_script: echo back the rules it was asked for
            import re

            return 0, "\n".join(re.findall(r"'(-A SPLITBRAIN [^']*)'", script))
        if "json" in script or cmd[0] == "python3":
            import json

            ips = cmd[5:]
            return 0, json.dumps({ip: "open" for ip in ips})
        return 0, "0"

    def probe_all(self, timeout=0.5):
        return {n: {"role": "follower", "term": 1} for n in NODES}


def test_a_partition_that_silently_did_nothing_is_an_infrastructure_error():
    from nemesis.errors import NemesisError

    cluster = SilentCluster()
    nem = Nemesis(cluster, FakeTarget(None), ["partition"])
    with pytest.raises(NemesisError, match="did not take effect"):
        nem.invoke({"f": "start-partition", "value": {"grudge": "halves"}})
    assert any("-j DROP" in script for _, script in cluster.commands), "rules were installed first"


def test_netem_arguments_compose_into_one_qdisc():
    from nemesis.netem import netem_args

    assert netem_args({"delay": {"delay_ms": 100, "jitter_ms": 20}}) == [
        "delay", "100ms", "20ms", "distribution", "normal"]
    both = netem_args({"delay": {"delay_ms": 50, "jitter_ms": 0}, "duplicate": {"probability": 0.1}})
    assert both == ["delay", "50ms", "duplicate", "10%"]
    assert netem_args({"reorder": {"probability": 0.25, "delay_ms": 50}}) == ["delay", "50ms", "reorder", "25%"]


def test_a_netem_fault_on_a_kernel_without_netem_is_refused_not_faked(monkeypatch):
    import nemesis.netem as netem
    from nemesis.errors import NemesisError

    monkeypatch.setattr(netem, "netem_problem", lambda: "this kernel has no netem qdisc")
    cluster = SilentCluster()
    nem = Nemesis(cluster, FakeTarget(None), ["delay"])
    with pytest.raises(NemesisError, match="netem"):
        nem.invoke({"f": "start-delay", "value": {"nodes": ["n1"]}})
    assert cluster.commands == [], "nothing was touched"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=8)
    | st.sampled_from(NODES + ["leader", "random"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["nodes", "grudge", "seed", "delta_ms", "rate", "period_ms", "probability", "delay_ms", "n1"]),
        inner, max_size=4),
    max_leaves=12,
)


@given(f=st.sampled_from(list(OPS) + ["clock-rate", "explode"]), value=json_values)
def test_any_op_value_is_either_understood_or_refused_with_nemesis_op_error(f, value):
    try:
        norm = validate_op({"f": f, "value": value}, NODES)
    except NemesisOpError:
        return
    assert norm["f"] in OPS
    for n in norm.get("nodes") or []:
        assert n in NODES or n in ("leader", "random")
