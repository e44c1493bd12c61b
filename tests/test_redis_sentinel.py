"""The Redis Sentinel target without Docker: settings, config files, outcome classification, the probe's reading.

The probe and error answers are what Redis 7.0.15 and its Sentinel answered
in a real 3-node cluster of this target (tests/data/redis_sentinel/
captured.json: raw RESP replies, and the errors redis-py raised, captured
before and after a kill of the primary and a failover); the client's socket
paths run against a small RESP server on localhost that answers like one.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from redis._parsers.base import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from harness.cli import main
from targets.base import ClusterLayout, NodeAddress, TargetOptions, option_problems
from targets.redis_sentinel import deploy, probe
from targets.redis_sentinel.client import (
    CAS_SCRIPT,
    RedisSentinelClient,
    agreed_primary,
    classify_error,
    command,
)
from targets.redis_sentinel.plugin import CLOCK_REFUSAL, NODE_SCRIPT, RedisSentinel
from targets.redis_sentinel.settings import RedisSentinelSettings, SettingsError
from targets.registry import get_target

CAPTURED = json.loads((Path(__file__).parent / "data" / "redis_sentinel" / "captured.json").read_text())
IPS = CAPTURED["layout"]  # node id -> the IP it had in the captured cluster
BY_IP = {ip: n for n, ip in IPS.items()}
LAYOUT = ClusterLayout(nodes=tuple(NodeAddress(n, ip) for n, ip in sorted(IPS.items())),
                       peer_port=6379, client_port=6379)


def reply(name: str) -> list:
    """The captured replies of one exchange, parsed."""
    entry = CAPTURED[name]
    return probe.parse_all(entry["reply"].encode(), len(entry["commands"]))


# ---- settings -----------------------------------------------------------------------------------


def test_defaults_fail_over_within_seconds_and_leave_the_mitigation_off():
    s = RedisSentinelSettings.parse({})
    assert (s.down_after_ms, s.failover_timeout_ms, s.quorum) == (2000, 6000, None)
    assert (s.min_replicas_to_write, s.min_replicas_max_lag, s.appendonly, s.appendfsync) == (0, 10, False, "everysec")
    assert s.quorum_of(3) == 2 and s.quorum_of(5) == 3


def test_options_are_spelt_with_dashes_or_underscores():
    s = RedisSentinelSettings.parse({"min-replicas-to-write": 1, "min_replicas_max_lag": 3,
                                     "down-after-milliseconds": 5000, "failover-timeout": 9000,
                                     "appendonly": True, "appendfsync": False, "quorum": 2})
    assert (s.min_replicas_to_write, s.min_replicas_max_lag, s.down_after_ms, s.failover_timeout_ms) == (1, 3, 5000, 9000)
    assert s.appendonly is True and s.appendfsync == "no" and s.quorum == 2  # YAML reads `no` as false


@pytest.mark.parametrize("settings, words", [
    ({"min_replicas": 1}, "target redis-sentinel has no option 'min_replicas'"),
    ({"down_after_ms": 0}, "down_after_ms: expected a whole number of milliseconds above 0, got 0"),
    ({"min_replicas_to_write": -1}, "min_replicas_to_write: expected a whole number of replicas"),
    ({"appendonly": "maybe"}, "appendonly: expected yes or no, got 'maybe'"),
    ({"appendfsync": "sometimes"}, "appendfsync: expected always or everysec or no"),
    ({"election_timeout": "150-300"}, "target redis-sentinel has no option 'election_timeout'"),
])
def test_bad_settings_are_one_line(settings, words):
    with pytest.raises(SettingsError) as e:
        RedisSentinelSettings.parse(settings)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert option_problems(RedisSentinel(), settings) == [str(e.value)]


def test_a_misspelt_option_gets_a_hint():
    with pytest.raises(SettingsError, match=r"no option 'min_replicas_to_wrte' \(did you mean 'min_replicas_to_write'\?\)"):
        RedisSentinelSettings.parse({"min_replicas_to_wrte": 1})


def test_the_election_bench_measures_sentinel_with_its_own_timing(tmp_path, capsys):
    """No Raft range to sweep: a range is refused in one line, `--ranges own` with down_after_ms is planned."""
    import argparse

    from harness.commands.bench import add_arguments, plan_from_args
    from harness.errors import UsageError

    assert main(["bench", "election", "--target", "redis-sentinel", "--ranges", "2000-2000", "--trials", "1",
                 "--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "has no Raft election timeout to set" in err and "\n" not in err
    p = argparse.ArgumentParser()
    add_arguments(p)
    plan = plan_from_args(p.parse_args(["election", "--target", "redis-sentinel", "--ranges", "own", "--option", "down_after_ms=1500"]))
    assert plan.target_settings(plan.ranges[0]) == {"down_after_ms": 1500}
    with pytest.raises(UsageError, match="down_after_ms: expected a whole number of milliseconds"):
        plan_from_args(p.parse_args(["election", "--target", "redis-sentinel", "--ranges", "own", "--option", "down_after_ms=0"]))


def test_a_run_with_a_bad_option_is_refused_before_it_starts(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("target: redis-sentinel\noptions: {appendfsync: sometimes}\n")
    assert main(["run", "--spec", str(spec), "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("splitbrain run: options: appendfsync: expected always or everysec or no") and "\n" not in err
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("fault, words", [
    ("clock", "clock: Debian's redis-server allocates with jemalloc"),
    ("vote-crash", "vote-crash: Redis Sentinel has no failpoints"),
])
def test_clock_and_vote_crash_are_refused_with_one_line(tmp_path, capsys, fault, words):
    lines = RedisSentinel().unsupported_faults(["partition", "kill", "pause", fault])
    assert len(lines) == 1 and lines[0].startswith(words) and "\n" not in lines[0]
    assert RedisSentinel().unsupported_faults(["partition", "kill", "pause", "loss", "delay"]) == []
    assert main(["run", "--target", "redis-sentinel", "--nemesis", fault, "--store", str(tmp_path / "s")]) == 2
    assert words in capsys.readouterr().err
    assert RedisSentinel().clock_control() is None
    assert fault != "clock" or lines[0] == CLOCK_REFUSAL


# ---- the node ------------------------------------------------------------------------------------


def conf(text: str) -> dict[str, str]:
    return {k: v for k, _, v in (line.partition(" ") for line in text.splitlines() if line)}


def test_the_target_is_built_in_and_its_node_runs_the_script_the_image_holds():
    target = get_target("redis-sentinel")
    recipe = target.image_recipe()
    assert {"redis-server", "redis-sentinel"} <= set(recipe.packages)
    assert NODE_SCRIPT in {f"{recipe.workdir}/{path}" for path, _ in recipe.files}
    cmd = target.node_command("n2", LAYOUT, TargetOptions(settings={"min_replicas_to_write": 1}))
    assert cmd[:3] == ["sh", NODE_SCRIPT, LAYOUT.data_dir]
    redis, sentinel = conf(cmd[3]), cmd[4]
    assert redis["replicaof"] == f"{IPS['n1']} 6379" and redis["min-replicas-to-write"] == "1"
    assert redis["dir"] == f"{LAYOUT.data_dir}/redis"  # survives a kill, with the config Sentinel rewrites
    assert f"sentinel monitor mymaster {IPS['n1']} 6379 2\n" in sentinel
    assert f"dir {LAYOUT.data_dir}/sentinel\n" in sentinel
    assert target.node_environment("n2", LAYOUT, TargetOptions()) == {}
    assert target.peer_port == target.client_port == 6379


def test_n1_starts_as_the_primary_and_the_sentinels_fail_over_on_the_settings():
    s = RedisSentinelSettings.parse({"down_after_ms": 1500, "failover_timeout_ms": 7000, "appendonly": "yes"})
    n1 = conf(deploy.redis_conf(LAYOUT, "n1", s))
    assert "replicaof" not in n1 and n1["appendonly"] == "yes" and n1["min-replicas-to-write"] == "0"
    sentinel = deploy.sentinel_conf(LAYOUT, "n3", s)
    assert "sentinel down-after-milliseconds mymaster 1500\n" in sentinel
    assert "sentinel failover-timeout mymaster 7000\n" in sentinel
    assert f"sentinel announce-ip {IPS['n3']}\n" in sentinel
    five = ClusterLayout(nodes=tuple(NodeAddress(f"n{i}", f"10.9.0.{i}") for i in range(1, 6)), peer_port=6379,
                         client_port=6379)
    assert "sentinel monitor mymaster 10.9.0.1 6379 3\n" in deploy.sentinel_conf(five, "n5", s)
    with pytest.raises(SettingsError, match="quorum 4 is more than the 3 Sentinels"):
        deploy.sentinel_conf(LAYOUT, "n1", RedisSentinelSettings.parse({"quorum": 4}))


# ---- RESP and the probe's reading ------------------------------------------------------------------


def test_resp_round_trip_and_incomplete_replies():
    assert probe.encode("SENTINEL", "MASTER", "mymaster") == b"*3\r\n$8\r\nSENTINEL\r\n$6\r\nMASTER\r\n$8\r\nmymaster\r\n"
    raw = CAPTURED["n1-start-server"]["reply"].encode()
    whole = probe.parse_all(raw, 2)
    assert whole[0] == ["master", 0, []] or whole[0][0] == "master"
    with pytest.raises(probe.Incomplete):
        probe.parse_all(raw[:-3], 2)
    assert probe.parse(b"-READONLY You can't write against a read only replica.\r\n")[0] == \
        "READONLY You can't write against a read only replica."
    assert isinstance(probe.parse(b"-ERR x\r\n")[0], probe.RespError)
    assert probe.parse(b"$-1\r\n") == (None, 5)


def test_at_the_start_everyone_names_n1_in_epoch_0():
    views = {}
    for n in IPS:
        server, (sentinel,) = reply(f"{n}-start-server"), reply(f"{n}-start-sentinel")
        views[n] = probe.status_view(probe.parse_role(server[0]), probe.parse_sentinel_master(sentinel), BY_IP, n, None)
        assert probe.parse_time(server[1]) > 1.7e9
    assert (views["n1"]["role"], views["n1"]["term"], views["n1"]["leader"]) == ("leader", 0, "n1")
    assert views["n1"]["replicas"] == 2 and probe.names_me(views["n1"], "n1") == 0
    # Captured a few seconds after the start: the Sentinels had not yet read both replicas from the
    # primary's INFO (every 10 s), the window in which a killed primary is never failed over.
    assert [views[n]["known_replicas"] for n in ("n1", "n2", "n3")] == [0, 1, 1]
    for n in ("n2", "n3"):
        assert (views[n]["role"], views[n]["term"], views[n]["leader"], views[n]["replicates"]) == ("follower", 0, "n1", "n1")
        assert probe.names_me(views[n], n) is None


def test_a_sentinel_that_finds_the_primary_down_still_names_it():
    (sentinel,) = reply("n2-sdown-sentinel")
    master = probe.parse_sentinel_master(sentinel)
    assert master["flags"] == "s_down,master" and master["ip"] == IPS["n1"]
    assert probe.config_epoch(master) == 0


def new_primary() -> str:
    (sentinel,) = reply("new-primary-sentinel")
    return BY_IP[probe.parse_sentinel_master(sentinel)["ip"]]


def test_after_the_failover_the_promoted_replica_leads_epoch_1_and_the_other_follows_it():
    new = new_primary()
    other = ({"n2", "n3"} - {new}).pop()
    (sentinel,) = reply("new-primary-sentinel")
    view = probe.status_view(probe.parse_role(reply("new-primary-server")[0]), probe.parse_sentinel_master(sentinel),
                             BY_IP, new, None)
    assert (view["role"], view["term"], view["leader"], view["redis_role"]) == ("leader", 1, new, "master")
    (sentinel,) = reply("other-after-sentinel")
    view = probe.status_view(probe.parse_role(reply("other-after-server")[0]), probe.parse_sentinel_master(sentinel),
                             BY_IP, other, None)
    assert (view["role"], view["term"], view["leader"]) == ("follower", 1, new)


def test_a_promoted_replica_whose_sentinel_has_not_caught_up_leads_an_unknown_term():
    role = probe.parse_role(reply("new-primary-server")[0])
    (old_view,) = reply("n2-sdown-sentinel")  # its Sentinel still names n1, epoch 0
    view = probe.status_view(role, probe.parse_sentinel_master(old_view), BY_IP, new_primary(), None)
    assert view["role"] == "leader" and view["term"] is None and view["leader"] == "n1"


def test_the_demoted_old_primary_follows_the_new_one():
    view = probe.status_view(probe.parse_role(reply("n1-demoted-server")[0]), None, BY_IP, "n1", 0)
    assert (view["role"], view["term"], view["replicates"], view["leader"]) == ("follower", None, new_primary(), new_primary())


class CannedProbe:
    """The plugin's status_probe over canned exchanges: (server replies, sentinel replies) per call."""

    def __init__(self, monkeypatch, steps):
        self.steps = list(steps)

        async def ask(ip, port, commands, timeout):
            server, sentinel = self.steps[0]
            if port == deploy.SENTINEL_PORT:
                self.steps.pop(0)
                return sentinel
            return server

        monkeypatch.setattr("targets.redis_sentinel.plugin.ask", ask)


def test_an_old_primary_keeps_the_epoch_it_was_promoted_in_until_it_is_demoted(monkeypatch):
    """n1 leads epoch 0; its Sentinel learns of epoch 1 while n1 is still master (a heal, before
    Sentinel demotes it): n1 still reports term 0, and follows once demoted."""
    target = RedisSentinel()
    target.node_command("n1", LAYOUT, TargetOptions())
    start, (start_sentinel,) = reply("n1-start-server"), reply("n1-start-sentinel")
    (moved_on,) = reply("other-after-sentinel")  # a Sentinel naming the new primary in epoch 1
    CannedProbe(monkeypatch, [(start, [start_sentinel]), (start, [moved_on]), (reply("n1-demoted-server"), [moved_on]),
                              (start, [moved_on])])
    address = f"{IPS['n1']}:6379"
    views = [asyncio.run(target.status_probe(address)) for _ in range(4)]
    assert [(v["role"], v["term"]) for v in views] == [("leader", 0), ("leader", 0), ("follower", 1), ("leader", None)]
    # The last: promoted again, but its Sentinel still names another: not the old epoch 0 (a term going back).
    assert views[1]["leader"] == new_primary() and views[0]["wall_time"] > 1.7e9


def test_a_node_whose_server_does_not_answer_is_none(monkeypatch):
    target = RedisSentinel()
    target.node_command("n1", LAYOUT, TargetOptions())

    async def ask(ip, port, commands, timeout):
        return None if port == 6379 else reply("n1-start-sentinel")

    monkeypatch.setattr("targets.redis_sentinel.plugin.ask", ask)
    assert asyncio.run(target.status_probe(f"{IPS['n1']}:6379")) is None


# ---- the client's outcomes ----------------------------------------------------------------------------


def redis_error(captured: dict):
    """The exception redis-py raises for the error reply Redis sent (rebuilt from its raw text)."""
    code, text = captured["status_code"], captured["text"]
    return BaseParser.parse_error(f"{code} {text}" if code else text)


@pytest.mark.parametrize("case", ["errors-replica", "errors-noreplicas"])
@pytest.mark.parametrize("op", ["set", "cas", "sadd"])
def test_readonly_and_noreplicas_answers_are_fails(case, op):
    """A replica's READONLY and min-replicas-to-write's NOREPLICAS (also from inside the cas script)."""
    e = redis_error(CAPTURED[case][op])
    assert type(e).__name__ == CAPTURED[case][op]["exception"]
    for f in ("write", "cas", "add"):
        out = classify_error(f, e, sent=True)
        assert out["type"] == "fail" and out["error"].split(": ", 1)[1].split(" ")[0] in ("READONLY", "NOREPLICAS")


@pytest.mark.parametrize("error", [RedisConnectionError("Connection closed by server."),
                                   RedisTimeoutError("Timeout reading from socket"), TimeoutError("timeout"),
                                   BaseParser.parse_error("ERR something we do not know")])
def test_a_write_sent_and_not_answered_may_have_happened(error):
    for f in ("write", "cas", "add"):
        assert classify_error(f, error, sent=True)["type"] == "info"
        assert classify_error(f, error, sent=False)["type"] == "fail"
    assert classify_error("read", error, sent=True)["type"] == "fail"
    assert classify_error("read-set", error, sent=True)["type"] == "fail"


def test_loading_is_a_fail_though_redis_py_raises_it_as_a_connection_error():
    e = BaseParser.parse_error("LOADING Redis is loading the dataset in memory")
    assert isinstance(e, RedisConnectionError)
    assert classify_error("write", e, sent=True)["type"] == "fail"


def test_commands_and_the_cas_script():
    assert command("write", 3, 7) == ("SET", "kv:3", "7")
    assert command("read", 3, None) == ("GET", "kv:3")
    assert command("cas", 3, [None, 2]) == ("EVAL", CAS_SCRIPT, 1, "kv:3", "null", "2")
    assert command("add", "set", 9) == ("SADD", "set:set", "9")
    assert command("read-set", "set", None) == ("SMEMBERS", "set:set")
    assert "redis.call('SET', KEYS[1], ARGV[2])" in CAS_SCRIPT and "return 0" in CAS_SCRIPT


def test_the_final_read_needs_a_majority_of_sentinels_and_no_dissent():
    a, b = ("10.0.0.1", 6379), ("10.0.0.2", 6379)
    assert agreed_primary([a, a, None, None, None], 5) is None  # 2 of 5
    assert agreed_primary([a, a, a, None, None], 5) == a
    assert agreed_primary([a, a, a, b, None], 5) is None  # the old primary's Sentinel still names it
    assert agreed_primary([a, a], 3) == a


class FakeRedis:
    """A RESP server on localhost: as a Sentinel it names `primary`; as a server it answers from `answers`
    (None: close the connection once the command has arrived)."""

    def __init__(self, primary_ip: str, answers: dict[str, bytes | None]):
        self.primary_ip, self.answers, self.seen = primary_ip, answers, []

    async def handle(self, reader, writer):
        data = b""
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                data += chunk
                while True:
                    try:
                        (cmd,) = probe.parse_all(data, 1)
                    except probe.Incomplete:
                        break
                    _, used = probe.parse(data)
                    data = data[used:]
                    name = " ".join(cmd[:2]).upper() if cmd[0].upper() == "SENTINEL" else cmd[0].upper()
                    if name not in ("CLIENT", "HELLO"):  # redis-py's handshake
                        self.seen.append(name)
                    if name == "SENTINEL MASTERS":
                        fields = ["name", "mymaster", "ip", self.primary_ip, "port", str(self.port), "flags", "master",
                                  "num-other-sentinels", "2"]
                        writer.write(b"*1\r\n" + probe.encode(*fields))
                    elif name in self.answers:
                        if self.answers[name] is None:
                            writer.close()
                            return
                        writer.write(self.answers[name])
                    else:
                        writer.write(b"+OK\r\n")  # HELLO, CLIENT SETINFO... redis-py's handshake
                    await writer.drain()
        finally:
            writer.close()

    async def start(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self


def run_client(answers, op, sentinel_up=True, server_up=True):
    async def go():
        fake = await FakeRedis("127.0.0.1", answers).start()
        port = fake.port
        if not server_up:
            # The Sentinel names a port where nothing listens: the connect is refused, nothing sent.
            probe_socket = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
            dead = probe_socket.sockets[0].getsockname()[1]
            probe_socket.close()
            await probe_socket.wait_closed()
            fake.port = dead
        client = RedisSentinelClient({"n1": f"127.0.0.1:{port}"}, timeout=1.0,
                                     sentinel_port=port if sentinel_up else 1)
        try:
            return await client.invoke("n1", op), fake.seen
        finally:
            await client.close()
            fake.server.close()

    return asyncio.run(go())


def test_an_answered_write_is_ok_and_names_the_primary_that_served_it():
    out, seen = run_client({"SET": b"+OK\r\n"}, {"f": "write", "key": 1, "value": 5})
    assert out == {"type": "ok", "value": 5, "error": None, "node": "n1"}
    assert seen[0] == "SENTINEL MASTERS" and "SET" in seen


def test_a_write_whose_connection_dropped_after_sending_is_info():
    out, seen = run_client({"SET": None}, {"f": "write", "key": 1, "value": 5})
    assert out["type"] == "info" and out["node"] == "n1" and "SET" in seen


def test_a_cas_whose_compare_failed_is_a_fail_and_one_that_set_is_ok():
    out, _ = run_client({"EVAL": b":0\r\n"}, {"f": "cas", "key": 1, "value": [1, 2]})
    assert (out["type"], out["error"]) == ("fail", "cas-mismatch")
    out, _ = run_client({"EVAL": b":1\r\n"}, {"f": "cas", "key": 1, "value": [1, 2]})
    assert (out["type"], out["value"]) == ("ok", [1, 2])


def test_a_read_and_a_set_read_decode_json():
    out, _ = run_client({"GET": b"$1\r\n7\r\n"}, {"f": "read", "key": 1, "value": None})
    assert (out["type"], out["value"]) == ("ok", 7)
    out, _ = run_client({"SMEMBERS": b"*2\r\n$1\r\n3\r\n$1\r\n1\r\n"}, {"f": "read", "key": "s", "value": None,
                                                                        "set": True})
    assert (out["type"], out["value"]) == ("ok", [1, 3])


def test_nothing_is_sent_without_a_sentinel_or_a_reachable_primary():
    out, seen = run_client({"SET": b"+OK\r\n"}, {"f": "write", "key": 1, "value": 5}, sentinel_up=False)
    assert out["type"] == "fail" and "node" not in out and seen == []
    out, seen = run_client({"SET": b"+OK\r\n"}, {"f": "write", "key": 1, "value": 5}, server_up=False)
    assert out["type"] == "fail" and "SET" not in seen


def test_a_replica_refusing_a_write_is_a_fail():
    out, _ = run_client({"SET": b"-READONLY You can't write against a read only replica.\r\n"},
                        {"f": "write", "key": 1, "value": 5})
    assert out["type"] == "fail" and "READONLY" in out["error"] and out["node"] == "n1"


# ---- the harness pieces this target relies on ------------------------------------------------------


def test_an_operation_is_recorded_on_the_node_the_client_says_served_it(tmp_path):
    """A client that routes for itself (as this one does, to the primary its Sentinel names) reports
    the serving node; the invoke keeps the node the client was bound to, the operation the server."""
    from harness.memory import NODES, MemoryClient, MemoryCluster, MemoryNemesis, quick_spec
    from harness.run import RunLoop
    from history.events import read_history
    from nemesis.schedule import make_schedule
    from workloads.base import make_workload

    class ViaLeader(MemoryClient):
        async def invoke(self, node, op):
            leader = self.c.leader()
            out = await super().invoke(leader, op)
            return out | {"node": leader} if out["type"] != "fail" else out

    spec = quick_spec(nemesis=(), seed=4)
    cluster = MemoryCluster()
    workload = make_workload(spec.workload, spec.seed, keys=spec.active_keys(), ops_per_key=spec.ops_per_key)
    RunLoop(spec, cluster, lambda nodes: ViaLeader(cluster), lambda nodes: MemoryNemesis(cluster), workload,
            make_schedule(spec.seed, spec.nemesis, NODES, spec.nemesis_interval, spec.time_limit),
            tmp_path / "history.jsonl", logs_dir=tmp_path).run()
    history = read_history(tmp_path / "history.jsonl")
    invoked = {e.index: e.node for e in history.events if e.type == "invoke" and e.process not in ("observer", "nemesis")}
    ok = [o for o in history.client_operations() if o.status == "ok"]
    assert ok and {o.node for o in ok} == {"n1"}  # the memory cluster's leader served every one
    assert {invoked[o.index] for o in ok} > {"n1"}  # though clients were bound to other nodes


def test_the_isolate_leader_family_only_ever_isolates_the_leader():
    import random

    from harness.spec import TestSpec, check_spec
    from nemesis.partition import ISOLATE_LEADER
    from nemesis.registry import family
    from nemesis.schedule import make_schedule

    nodes = ["n1", "n2", "n3", "n4", "n5"]
    rng = random.Random(1)
    assert {ISOLATE_LEADER.draw(rng, nodes, set()).value["grudge"] for _ in range(50)} == {"isolate-leader"}
    name = "nemesis.partition:ISOLATE_LEADER"
    assert family(name) is ISOLATE_LEADER
    check_spec(TestSpec(target="redis-sentinel", nemesis=(name,)), targets=["redis-sentinel"])  # no SpecError
    plan = make_schedule(7, [name], nodes, 15, 60)
    assert [(s.at, s.f) for s in plan] == [(15, "start-partition"), (30, "stop-partition"), (45, "start-partition"),
                                           (60, "stop-partition")]
    assert all(s.value["grudge"] == "isolate-leader" for s in plan if s.f == "start-partition")
