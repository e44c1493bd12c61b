"""A node's environment: a faketime node caches its time file (no file read per clock call), a clock-file
node gets nothing of libfaketime, and a target's own variables override the harness's."""

from __future__ import annotations

from harness.cluster import node_environment
from targets.base import (
    CLOCK_FILE,
    FAKETIME,
    FAKETIME_CACHE_S,
    ClusterLayout,
    NodeAddress,
    TargetOptions,
)

LAYOUT = ClusterLayout(nodes=(NodeAddress("n1", "10.0.0.11"),), peer_port=7000, client_port=8000)


class Target:
    def __init__(self, control, env=None):
        self.control, self.env = control, env or {}

    def clock_control(self):
        return self.control

    def node_environment(self, node_id, cluster, options):
        return dict(self.env)


def test_a_faketime_node_caches_its_time_file_instead_of_reading_it_on_every_clock_call():
    env = node_environment(Target(FAKETIME), "n1", LAYOUT, TargetOptions())
    assert env["LD_PRELOAD"].endswith("libfaketime.so.1")
    assert env["FAKETIME_TIMESTAMP_FILE"] == LAYOUT.faketime_file
    assert env["FAKETIME_CACHE_DURATION"] == str(FAKETIME_CACHE_S)
    assert "FAKETIME_NO_CACHE" not in env


def test_a_clock_file_node_runs_without_libfaketime():
    assert node_environment(Target(CLOCK_FILE, {"A": "1"}), "n1", LAYOUT, TargetOptions()) == {"A": "1"}


def test_the_targets_own_environment_overrides_the_harness():
    env = node_environment(Target(FAKETIME, {"FAKETIME_CACHE_DURATION": "5", "X": "y"}), "n1", LAYOUT,
                           TargetOptions())
    assert env["FAKETIME_CACHE_DURATION"] == "5" and env["X"] == "y"
    assert env["FAKETIME_TIMESTAMP_FILE"] == LAYOUT.faketime_file
