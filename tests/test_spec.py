"""Test specs: YAML and flags give one resolved spec; every bad spec is one line and exit 2, before anything starts."""

from __future__ import annotations

import pytest
import yaml

from harness.cli import main
from harness.spec import SpecError, TestSpec, build_spec, check_spec, spec_from_mapping


def write(tmp_path, text: str):
    p = tmp_path / "spec.yaml"
    p.write_text(text)
    return p


def test_yaml_and_flags_merge_with_flags_winning(tmp_path):
    p = write(tmp_path, "target: raftkv\nnodes: 3\nnemesis: [partition, kill]\ntime-limit: 30\nseed: 5\n")
    spec = build_spec(p, {"nodes": 5, "seed": None, "rate": 500.0})
    assert spec.nodes == 5 and spec.seed == 5 and spec.rate == 500.0
    assert spec.nemesis == ("partition", "kill") and spec.time_limit == 30.0


def test_nemesis_as_a_comma_string_or_none():
    assert spec_from_mapping({"nemesis": "partition,kill"}).nemesis == ("partition", "kill")
    assert spec_from_mapping({"nemesis": "none"}).nemesis == ()


def test_resolved_spec_round_trips_through_yaml_with_its_seed(tmp_path):
    spec = TestSpec(nodes=3, nemesis=("kill",), bugs=("stale-read",)).resolve()
    assert spec.seed is not None and spec.test == "raftkv-register-kill-bug-stale-read"
    again = build_spec(write(tmp_path, spec.to_yaml()), {})
    assert again == spec


@pytest.mark.parametrize(
    "data, message",
    [
        ({"nemesis": "partition,explode"}, "unknown nemesis 'explode'"),
        ({"nemesis": "partiton"}, "did you mean 'partition'"),
        ({"workload": "queue"}, "unknown workload 'queue'"),
        ({"nodes": 0}, "nodes must be at least 1"),
        ({"concurrency": 0}, "concurrency must be at least 1"),
        ({"rate": -1}, "rate must be positive"),
        ({"time-limit": 0}, "time-limit must be positive"),
        ({"nemesis": "kill,kill"}, "twice"),
        ({"nodes": 1, "nemesis": "partition"}, "at least 2 nodes"),
    ],
)
def test_bad_settings_are_one_line_errors(data, message):
    with pytest.raises(SpecError) as e:
        check_spec(spec_from_mapping(data), targets=["raftkv"], bugs=["stale-read"])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_unknown_keys_and_wrong_types_are_named():
    with pytest.raises(SpecError, match="unknown setting 'noeds'.*'nodes'"):
        spec_from_mapping({"noeds": 3})
    with pytest.raises(SpecError, match="nodes: expected a whole number"):
        spec_from_mapping({"nodes": "five"})


def test_unknown_target_and_bug():
    with pytest.raises(SpecError, match="unknown target 'etcd'"):
        check_spec(TestSpec(target="etcd"), targets=["raftkv"])
    with pytest.raises(SpecError, match="unknown bug 'nope'"):
        check_spec(TestSpec(bugs=("nope",)), targets=["raftkv"], bugs=["stale-read"])


def test_malformed_yaml_names_the_file_and_line(tmp_path):
    p = write(tmp_path, "nodes: 3\nnemesis: [partition\n")
    with pytest.raises(SpecError) as e:
        build_spec(p, {})
    assert str(e.value).startswith(f"{p}:") and "malformed YAML" in str(e.value)
    with pytest.raises(SpecError, match="expected a mapping"):
        build_spec(write(tmp_path, "- a\n- b\n"), {})


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--nemesis", "partition,bogus"], "unknown nemesis 'bogus'"),
        (["run", "--nodes", "0"], "nodes must be at least 1"),
        (["run", "--target", "nosuch"], "unknown target 'nosuch'"),
        (["run", "--workload", "nosuch"], "unknown workload"),
        (["run", "--bug", "nosuch"], "unknown bug 'nosuch'"),
        (["run", "--spec", "/nonexistent/spec.yaml"], "cannot read"),
    ],
)
def test_cli_bad_specs_exit_2_with_one_line_before_anything_starts(argv, message, capsys, tmp_path):
    code = main(argv + ["--store", str(tmp_path / "store")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "store").exists()  # nothing started, nothing written


def test_cli_malformed_yaml_exits_2(capsys, tmp_path):
    p = write(tmp_path, "nodes: [3\n")
    assert main(["run", "--spec", str(p), "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err
    assert "malformed YAML" in err and err.count("\n") == 1


def test_cli_fault_the_target_cannot_do_exits_2(capsys, tmp_path, monkeypatch):
    import targets.raftkv.plugin as plugin

    monkeypatch.setattr(plugin.RaftKV, "clock_control", lambda self: None)
    assert main(["run", "--nemesis", "clock", "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err
    assert "clock" in err and err.count("\n") == 1


def test_spec_yaml_is_plain_yaml():
    assert yaml.safe_load(TestSpec().resolve().to_yaml())["nodes"] == 5
