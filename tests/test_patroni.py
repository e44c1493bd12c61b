"""The Patroni target without Docker: settings, patroni.yml, how psycopg's outcomes are classified, how the probe reads the REST API.

The errors are ones psycopg 3 raised against a real Patroni cluster
(tests/data/patroni/psycopg_errors.json: pickled, with the server's SQLSTATE
and severity), the REST answers ones Patroni 3.0.2 gave
(tests/data/patroni/*.json); tests/test_patroni_docker.py talks to a real
cluster. The connection is faked: FakeConnection answers from a dict and
raises what it is told to.
"""

from __future__ import annotations

import asyncio
import base64
import json
import pickle
from pathlib import Path

import psycopg
import pytest
import yaml

from harness.cli import main
from targets.base import ClusterLayout, NodeAddress, TargetOptions
from targets.patroni import config, probe
from targets.patroni.client import PatroniClient, classify_error, conninfo, severity
from targets.patroni.plugin import NODE_SCRIPT, Patroni
from targets.patroni.settings import PatroniSettings, SettingsError
from targets.registry import get_target

DATA = Path(__file__).resolve().parent / "data" / "patroni"
LAYOUT = ClusterLayout(nodes=tuple(NodeAddress(f"n{i}", f"10.9.0.{10 + i}") for i in (1, 2, 3)),
                       peer_port=2380, client_port=5432)


def real_error(name: str) -> psycopg.Error:
    entry = json.loads((DATA / "psycopg_errors.json").read_text())[name]
    return pickle.loads(base64.b64decode(entry["pickle"]))


# ---- settings -----------------------------------------------------------------------------------


def test_defaults_fail_over_within_ten_seconds_and_keep_patronis_rule():
    s = PatroniSettings.parse({})
    assert (s.synchronous_mode, s.maximum_lag_on_failover, s.ttl, s.loop_wait, s.retry_timeout) == (
        "off", 1048576, 10, 2, 3)
    assert s.loop_wait + 2 * s.retry_timeout <= s.ttl
    assert s.dcs() == {"ttl": 10, "loop_wait": 2, "retry_timeout": 3, "maximum_lag_on_failover": 1048576,
                       "synchronous_mode": False, "synchronous_mode_strict": False}


@pytest.mark.parametrize("given, mode, strict", [
    (True, True, False), ("on", True, False), ("strict", True, True), (False, False, False), ("off", False, False)])
def test_synchronous_mode_from_yaml_booleans_or_words(given, mode, strict):
    dcs = PatroniSettings.parse({"synchronous_mode": given}).dcs()
    assert (dcs["synchronous_mode"], dcs["synchronous_mode_strict"]) == (mode, strict)
    # YAML reads `on` as true: what a spec's `options: {synchronous_mode: on}` gives.
    assert yaml.safe_load("synchronous_mode: on") == {"synchronous_mode": True}


@pytest.mark.parametrize("settings, words", [
    ({"synchronous": True}, "target patroni has no option 'synchronous'"),
    ({"synchronous_mode": "yes"}, "synchronous_mode: expected off, on or strict, got 'yes'"),
    ({"maximum_lag_on_failover": -1}, "maximum_lag_on_failover: expected a whole number of bytes"),
    ({"retry_timeout": 2}, "retry_timeout 2 s is under Patroni's documented minimum of 3 s"),
    ({"ttl": 7}, "loop_wait 2 + 2 * retry_timeout 3 = 8 s is over ttl 7 s"),
    ({"loop_wait": 0}, "loop_wait: expected a whole number of seconds above 0"),
    ({"election_timeout": "150-300", "heartbeat": 30}, "election_timeout: Patroni has no Raft election timing"),
])
def test_bad_settings_are_one_line(settings, words):
    with pytest.raises(SettingsError) as e:
        PatroniSettings.parse(settings)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert Patroni().unsupported_options(settings) == [str(e.value)]


def test_a_run_with_a_bad_option_is_refused_before_it_starts(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("target: patroni\noptions: {synchronus_mode: on}\n")
    assert main(["run", "--spec", str(spec), "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no option 'synchronus_mode' (did you mean 'synchronous_mode'?)" in err and "\n" not in err
    assert not (tmp_path / "store").exists()


def test_a_raft_range_for_the_election_bench_is_refused_with_what_governs_patroni(tmp_path, capsys):
    assert main(["bench", "election", "--target", "patroni", "--ranges", "150-300", "--trials", "1",
                 "--store", str(tmp_path / "bench")]) == 2
    err = capsys.readouterr().err.strip()
    assert "Patroni has no Raft election timing" in err and "ttl" in err and "\n" not in err
    assert "--ranges own" in err  # what it can run: Patroni's own failover timing


def test_clock_and_vote_crash_are_refused_with_one_line_each(tmp_path, capsys):
    lines = Patroni().unsupported_faults(["partition", "kill", "pause", "clock", "vote-crash"])
    assert [line.split(":")[0] for line in lines] == ["clock", "vote-crash"]
    assert all("\n" not in line for line in lines)
    assert Patroni().unsupported_faults(["partition", "kill", "pause", "loss", "delay"]) == []
    assert main(["run", "--target", "patroni", "--nemesis", "clock", "--store", str(tmp_path / "s")]) == 2
    assert "clock: " in capsys.readouterr().err


# ---- the node ------------------------------------------------------------------------------------


def test_the_target_is_built_in_and_its_node_runs_the_scripts_the_image_holds():
    target = get_target("patroni")
    recipe = target.image_recipe()
    assert {"patroni", "postgresql-15", "etcd-server", "python3-etcd"} <= set(recipe.packages)
    held = {f"{recipe.workdir}/{path}" for path, _ in recipe.files}
    assert {NODE_SCRIPT, "/opt/splitbrain/etcd/node.sh", config.POST_BOOTSTRAP.split()[-1]} <= held
    cmd = target.node_command("n2", LAYOUT, TargetOptions(settings={"synchronous_mode": True}))
    assert cmd[:2] == ["sh", NODE_SCRIPT]
    data_dir, cfg_path, text = cmd[2:5]
    assert data_dir == LAYOUT.data_dir and cfg_path == "/var/lib/splitbrain/patroni.yml"
    assert yaml.safe_load(text)["bootstrap"]["dcs"]["synchronous_mode"] is True
    etcd = cmd[5:]  # the etcd target's own command, on etcd's ports, its data under ours
    assert etcd[:3] == ["sh", "/opt/splitbrain/etcd/node.sh", LAYOUT.cluster_key_file]
    assert "--name=n2" in etcd and "--data-dir=/var/lib/splitbrain/data/etcd" in etcd and "--pre-vote=true" in etcd
    assert "--initial-cluster=n1=http://10.9.0.11:2380,n2=http://10.9.0.12:2380,n3=http://10.9.0.13:2380" in etcd
    assert target.node_environment("n2", LAYOUT, TargetOptions()) == {} and target.clock_control() is None
    assert target.peer_port == 2380 and target.client_port == 5432


def test_patroni_yml_is_yaml_and_names_this_node_its_etcd_members_and_the_runs_subnet():
    cfg = yaml.safe_load(config.config_text("n3", LAYOUT, PatroniSettings.parse({"ttl": 20})))
    assert cfg["name"] == "n3" and cfg["scope"] == "splitbrain"
    assert cfg["etcd3"]["hosts"] == ["10.9.0.13:2379", "10.9.0.11:2379", "10.9.0.12:2379"]
    assert cfg["restapi"]["connect_address"] == "10.9.0.13:8008"
    pg = cfg["postgresql"]
    assert pg["connect_address"] == "10.9.0.13:5432" and pg["data_dir"] == "/var/lib/splitbrain/data/pg"
    assert pg["bin_dir"] == "/usr/lib/postgresql/15/bin"
    assert "host replication replicator 10.9.0.0/24 scram-sha-256" in pg["pg_hba"]
    assert "host all all 10.9.0.0/24 scram-sha-256" in pg["pg_hba"]
    dcs = cfg["bootstrap"]["dcs"]
    assert dcs["ttl"] == 20 and dcs["postgresql"]["use_pg_rewind"] is True
    assert dcs["postgresql"]["parameters"]["wal_log_hints"] == "on"


# ---- the client: finding the primary, outcomes -------------------------------------------------


def test_a_client_bound_to_a_node_tries_it_first_then_the_others_for_a_read_write_server():
    addresses = {n.id: f"{n.ip}:5432" for n in LAYOUT.nodes}
    parts = psycopg.conninfo.conninfo_to_dict(conninfo(addresses, "n2"))
    assert parts["host"] == "10.9.0.12,10.9.0.11,10.9.0.13" and parts["port"] == "5432,5432,5432"
    assert parts["target_session_attrs"] == "read-write" and parts["user"] == "splitbrain"


def test_the_real_errors_carry_what_classification_reads():
    assert (real_error("read_only_sql_transaction").sqlstate, severity(real_error("read_only_sql_transaction"))) == (
        "25006", "ERROR")
    assert (real_error("serialization_failure").sqlstate, severity(real_error("serialization_failure"))) == (
        "40001", "ERROR")
    assert (real_error("admin_shutdown").sqlstate, severity(real_error("admin_shutdown"))) == ("57P01", "FATAL")
    assert real_error("connection_refused").sqlstate is None and severity(real_error("connection_refused")) is None


@pytest.mark.parametrize("name, kind", [
    ("read_only_sql_transaction", "fail"),  # the server refused the statement: rolled back
    ("serialization_failure", "fail"),
    ("admin_shutdown", "info"),  # FATAL: the session ended, maybe after the commit (a sync-rep wait)
    ("connection_closed_locally", "info"),  # sent or not, we cannot tell: may have happened
])
def test_a_write_that_was_sent_is_fail_only_when_the_server_rolled_it_back(name, kind):
    for f in ("write", "cas", "add"):
        assert classify_error(f, real_error(name), sent=True)["type"] == kind


@pytest.mark.parametrize("name", ["connection_refused", "no_read_write_host", "admin_shutdown"])
def test_nothing_sent_or_a_read_is_a_fail(name):
    assert classify_error("write", real_error(name), sent=False)["type"] == "fail"
    assert classify_error("read", real_error(name), sent=True)["type"] == "fail"
    assert classify_error("read-set", real_error(name), sent=True)["type"] == "fail"


class FakeCursor:
    def __init__(self, rows, rowcount, description):
        self.rows, self.rowcount, self.description = rows, rowcount, description

    async def fetchall(self):
        return self.rows


class FakeConnection:
    """A connection to a primary holding `registers` and `set_elements` as dicts; `fail` raises once."""

    def __init__(self, db, fail=None, hang=False):
        self.db, self.fail, self.hang, self.closed, self.sent = db, fail, hang, False, []

    async def execute(self, sql, params):
        self.sent.append(sql.split()[0])
        if self.hang:
            await asyncio.sleep(10)
        if self.fail is not None:
            raise self.fail
        regs, sets = self.db.setdefault("registers", {}), self.db.setdefault("set_elements", set())
        if sql.startswith("SELECT value"):
            return FakeCursor([(regs[params[0]],)] if params[0] in regs else [], 1, ["value"])
        if sql.startswith("INSERT INTO registers"):
            regs[params[0]] = params[1]
            return FakeCursor([], 1, None)
        if sql.startswith("UPDATE"):
            to, key, frm = params
            hit = regs.get(key) == frm
            if hit:
                regs[key] = to
            return FakeCursor([], int(hit), None)
        if sql.startswith("INSERT INTO set_elements"):
            sets.add(params)
            return FakeCursor([], 1, None)
        return FakeCursor([(e,) for k, e in sorted(sets) if k == params[0]], 1, ["element"])

    async def close(self):
        self.closed = True


def fake_client(conns, timeout=1.0):
    made = []

    async def connect(info, autocommit):
        assert autocommit is True and "target_session_attrs=read-write" in info
        c = conns.pop(0)
        if isinstance(c, BaseException):
            raise c
        made.append(c)
        return c

    addresses = {n.id: f"{n.ip}:5432" for n in LAYOUT.nodes}
    return PatroniClient(addresses, timeout, connect=connect), made


def run(client, pairs):
    async def go():
        return [await client.invoke(node, op) for node, op in pairs]

    return asyncio.run(go())


def test_registers_and_a_set_as_sql_on_one_kept_connection():
    db = {}
    client, made = fake_client([FakeConnection(db)])
    got = run(client, [
        ("n1", {"f": "read", "key": 1}), ("n1", {"f": "write", "key": 1, "value": 3}),
        ("n1", {"f": "cas", "key": 1, "value": [3, 4]}), ("n1", {"f": "cas", "key": 1, "value": [3, 5]}),
        ("n1", {"f": "read", "key": 1}), ("n1", {"f": "add", "key": "s", "value": 2}),
        ("n1", {"f": "add", "key": "s", "value": 1}), ("n1", {"f": "read", "key": "s"})])
    assert [(o["type"], o["value"]) for o in got] == [
        ("ok", None), ("ok", 3), ("ok", [3, 4]), ("fail", None), ("ok", 4), ("ok", 2), ("ok", 1), ("ok", [1, 2])]
    assert got[3]["error"] == "cas-mismatch"
    assert len(made) == 1 and db["registers"] == {"1": "4"}


def test_a_broken_connection_is_dropped_and_the_primary_found_again():
    db = {}
    broken = FakeConnection(db, fail=real_error("admin_shutdown"))
    client, made = fake_client([broken, real_error("no_read_write_host"), FakeConnection(db)])
    got = run(client, [("n1", {"f": "write", "key": 1, "value": 1})] * 3)
    assert [o["type"] for o in got] == ["info", "fail", "ok"]
    assert "57P01" in got[0]["error"] and broken.closed
    assert "session is read-only" in got[1]["error"]


def test_a_timeout_is_info_for_a_write_sent_and_fail_for_a_read():
    client, _ = fake_client([FakeConnection({}, hang=True), FakeConnection({}, hang=True)], timeout=0.05)
    got = run(client, [("n1", {"f": "add", "key": "s", "value": 1}), ("n1", {"f": "read", "key": "s"})])
    assert [(o["type"], o["error"]) for o in got] == [("info", "timeout"), ("fail", "timeout")]


def test_a_timeout_while_connecting_sent_nothing():
    async def never(info, autocommit):
        await asyncio.sleep(10)

    client = PatroniClient({"n1": "10.9.0.11:5432"}, 0.05, connect=never)
    assert run(client, [("n1", {"f": "write", "key": 1, "value": 1})])[0] == {
        "type": "fail", "value": None, "error": "timeout"}


# ---- the probe: answers captured from Patroni 3.0.2 ---------------------------------------------


def answers(name):
    return json.loads((DATA / name).read_text())


def test_a_healthy_cluster_one_primary_two_replicas_on_its_timeline():
    a = answers("healthy.json")
    views = {n: probe.status_view(a[f"{n}/patroni"]["body"], a[f"{n}/cluster"]["body"], ip)
             for n, ip in (("n1", "10.210.62.11"), ("n2", "10.210.62.12"), ("n3", "10.210.62.13"))}
    assert {n: (v["role"], v["term"], v["leader"]) for n, v in views.items()} == {
        "n1": ("leader", 1, "n1"), "n2": ("follower", 1, "n1"), "n3": ("follower", 1, "n1")}
    assert a["n2/patroni"]["body"]["timeline"] is None  # a replica's comes from its member entry
    assert views["n1"]["commit_index"] is None and isinstance(views["n1"]["lsn"], int)
    assert a["n1/primary"]["status"] == 200 and a["n2/primary"]["status"] == 503


def test_an_isolated_primary_leads_until_it_demotes_and_the_new_one_is_on_a_new_timeline():
    snaps = answers("isolated-primary.json")  # 0.5, 6.6, 16.1 and 46.6 s after n2 was cut off
    roles = [probe.status_view(s["n2/patroni"].get("body"), s["n2/cluster"].get("body"), "10.210.78.12")
             for s in snaps]
    assert roles[0]["role"] == "leader" and roles[0]["term"] == 2  # cut off, still a primary
    assert any(r and r["role"] == "stopping" for r in roles)  # demoting itself
    new = [probe.status_view(s["n1/patroni"].get("body"), s["n1/cluster"].get("body"), "10.210.78.11")
           for s in snaps]
    assert new[0]["role"] == "follower" and new[2]["role"] == "leader" and new[2]["term"] == 3
    assert new[-1]["leader"] == "n1" and roles[-1]["role"] != "leader"


def test_a_node_not_yet_made_counts_as_answering_once_the_cluster_has_a_primary():
    a = answers("bootstrap.json")
    assert a["body"]["role"] == "uninitialized"
    assert probe.status_view(a["body"], None, a["ip"]) is None  # no primary yet: initdb is still running
    with_primary = answers("healthy.json")["n1/cluster"]["body"]
    view = probe.status_view(a["body"], with_primary, a["ip"])  # a replica being copied from it
    assert view["role"] == "stopped" and view["leader"] == "n1" and view["term"] is None
    assert probe.status_view(None, None) is None and probe.status_view({"error": "x"}, None) is None


def test_wall_time_is_the_date_header_to_the_half_second():
    assert probe.wall_time("Wed, 02 Dec 2026 00:55:12 GMT") == 1796172912.5
    assert probe.wall_time(None) is None and probe.wall_time("garbage") is None


def test_the_completion_names_the_primary_that_served_not_the_node_the_client_is_bound_to():
    """libpq lands on whichever host is read-write: the split-brain checker must see that primary."""
    from types import SimpleNamespace

    db = {}
    on_n2 = FakeConnection(db)
    on_n2.info = SimpleNamespace(host=LAYOUT.nodes[1].ip)  # psycopg's ConnectionInfo.host
    failing = FakeConnection(db, fail=real_error("admin_shutdown"))
    failing.info = SimpleNamespace(host=LAYOUT.nodes[2].ip)
    client, _ = fake_client([on_n2, failing])
    ok, info = run(client, [("n1", {"f": "write", "key": 1, "value": 1}), ("n3", {"f": "write", "key": 1, "value": 2})])
    assert (ok["type"], ok["node"]) == ("ok", "n2")
    assert (info["type"], info["node"]) == ("info", "n3")
    assert "node" not in run(fake_client([FakeConnection(db)])[0], [("n1", {"f": "read", "key": 1})])[0]


def test_nodes_on_several_engines_let_replicas_in_from_each_engines_subnet():
    layout = ClusterLayout(nodes=(NodeAddress("n1", "10.9.0.11"), NodeAddress("n2", "10.9.4.12"),
                                  NodeAddress("n3", "10.9.0.13")), peer_port=2380, client_port=5432)
    hba = yaml.safe_load(config.config_text("n1", layout, PatroniSettings.parse({})))["postgresql"]["pg_hba"]
    for net in ("10.9.0.0/24", "10.9.4.0/24"):
        assert f"host replication replicator {net} scram-sha-256" in hba and f"host all all {net} scram-sha-256" in hba
    assert sum("10.9.0.0/24" in line for line in hba) == 2  # each subnet once, however many nodes it holds
