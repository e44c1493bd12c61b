"""The ZooKeeper target without Docker: settings, zoo.cfg, how kazoo's outcomes are classified, how the probe reads the AdminServer.

kazoo is faked (FakeKazoo: an in-memory tree behind kazoo's *_async calls,
with kazoo's own exception classes); the AdminServer answers are canned from
what ZooKeeper 3.8.0 answered in a real ensemble (tests/test_zookeeper_docker.py
talks to one).
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import httpx
import pytest
from kazoo.exceptions import (
    BadVersionError,
    ConnectionClosedError,
    ConnectionLoss,
    NodeExistsError,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)

from harness.cli import main
from targets.base import ClusterLayout, NodeAddress, TargetOptions
from targets.registry import get_target
from targets.zookeeper import ensemble, plugin, probe
from targets.zookeeper.client import ZooKeeperClient, classify_error, encode
from targets.zookeeper.plugin import NODE_SCRIPT, ZooKeeper
from targets.zookeeper.settings import SettingsError, ZooKeeperSettings

LAYOUT = ClusterLayout(nodes=tuple(NodeAddress(f"n{i}", f"10.9.0.{10 + i}") for i in (1, 2, 3)),
                       peer_port=3888, client_port=2181)


# ---- settings -----------------------------------------------------------------------------------


def test_defaults_notice_a_dead_leader_in_three_seconds():
    s = ZooKeeperSettings.parse({})
    assert (s.tick_ms, s.init_limit, s.sync_limit, s.reads) == (200, 50, 15, "plain")
    assert s.tick_ms * s.sync_limit == 3000 and s.sync_reads is False


def test_options_are_spelt_either_way():
    s = ZooKeeperSettings.parse({"tickTime": 100, "init-limit": 30, "sync_limit": 5, "reads": "sync"})
    assert (s.tick_ms, s.init_limit, s.sync_limit, s.sync_reads) == (100, 30, 5, True)


@pytest.mark.parametrize("settings, words", [
    ({"tick": 100}, "target zookeeper has no option 'tick'"),
    ({"synclimit": 0}, "sync_limit: expected a whole number of ticks above 0, got 0"),
    ({"tick_time": "200"}, "tick_time: expected a whole number of milliseconds"),
    ({"init_limit": True}, "init_limit: expected a whole number of ticks"),
    ({"reads": "linearizable"}, "reads: expected plain or sync, got 'linearizable'"),
    ({"election_timeout": 150}, "no option 'election_timeout'"),
])
def test_bad_settings_are_one_line(settings, words):
    with pytest.raises(SettingsError) as e:
        ZooKeeperSettings.parse(settings)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert ZooKeeper().unsupported_options(settings) == [str(e.value)]


def test_a_misspelt_option_gets_a_hint():
    with pytest.raises(SettingsError, match=r"no option 'sync_limt' \(did you mean 'sync_limit'\?\)"):
        ZooKeeperSettings.parse({"sync_limt": 3})


def test_a_run_with_a_bad_option_is_refused_before_it_starts(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("target: zookeeper\noptions: {reads: linearizable}\n")
    assert main(["run", "--spec", str(spec), "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("splitbrain run: options: reads: expected plain or sync") and "\n" not in err
    assert not (tmp_path / "store").exists()


def test_vote_crash_is_refused_with_one_line(tmp_path, capsys):
    lines = ZooKeeper().unsupported_faults(["partition", "kill", "pause", "vote-crash"])
    assert len(lines) == 1 and lines[0].startswith("vote-crash: ZooKeeper has no failpoints")
    assert ZooKeeper().unsupported_faults(["partition", "kill", "pause", "loss", "delay"]) == []
    assert main(["run", "--target", "zookeeper", "--nemesis", "vote-crash", "--store", str(tmp_path / "s")]) == 2
    assert "vote-crash: ZooKeeper has no failpoints" in capsys.readouterr().err


# ---- the node ------------------------------------------------------------------------------------


def test_the_target_is_built_in_and_its_node_runs_the_script_the_image_holds():
    target = get_target("zookeeper")
    recipe = target.image_recipe()
    assert "zookeeper" in recipe.packages
    held = {f"{recipe.workdir}/{path}" for path, _ in recipe.files}
    assert NODE_SCRIPT in held and ensemble.LOG4J_CONFIG in held
    cmd = target.node_command("n2", LAYOUT, TargetOptions(settings={"tick_time": 100}))
    assert cmd[:2] == ["sh", NODE_SCRIPT]
    cfg_path, cfg, data_dir, myid, epoch_port = cmd[2:7]
    assert cfg_path == "/var/lib/splitbrain/zoo.cfg" and data_dir == LAYOUT.data_dir and myid == "2"
    assert "tickTime=100\n" in cfg and epoch_port == str(ensemble.EPOCH_PORT)
    java = cmd[7:]
    assert java[0] == "java" and "-Xmx256m" in java
    assert java[-2:] == [ensemble.MAIN_CLASS, cfg_path]
    assert java[java.index("-cp") + 1].startswith("/etc/zookeeper/conf:/usr/share/java/zookeeper.jar")
    assert target.node_environment("n2", LAYOUT, TargetOptions()) == {"FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_FORCE_MONOTONIC_FIX": "0"}
    assert target.peer_port == 3888 and target.client_port == 2181


def test_zoo_cfg_lists_every_server_by_its_myid():
    cfg = ensemble.zoo_cfg(LAYOUT, ZooKeeperSettings())
    entries = dict(line.split("=", 1) for line in cfg.splitlines() if line and not line.startswith("#"))
    assert {k: entries[k] for k in ("tickTime", "initLimit", "syncLimit", "dataDir", "clientPort")} == {
        "tickTime": "200", "initLimit": "50", "syncLimit": "15", "dataDir": LAYOUT.data_dir, "clientPort": "2181"}
    assert [(k, v) for k, v in entries.items() if k.startswith("server.")] == [
        ("server.1", "10.9.0.11:2888:3888"), ("server.2", "10.9.0.12:2888:3888"), ("server.3", "10.9.0.13:2888:3888")]
    assert entries["admin.enableServer"] == "true" and entries["admin.serverPort"] == "8080"
    assert {"srvr", "mntr", "ruok"} <= set(entries["4lw.commands.whitelist"].split(","))
    assert entries["standaloneEnabled"] == "false"  # one node is an ensemble of one, with epochs
    assert ensemble.myids(LAYOUT) == {"n1": 1, "n2": 2, "n3": 3}


def test_the_client_reads_as_the_nodes_were_started_and_the_probe_knows_their_myids():
    target = ZooKeeper()
    assert target.client({"n1": "x:1"}).sync_reads is False
    target.node_command("n1", LAYOUT, TargetOptions(settings={"reads": "sync"}))
    assert target.client({"n1": "x:1"}).sync_reads is True
    assert target.names == {1: "n1", 2: "n2", 3: "n3"} and target.by_ip["10.9.0.12"] == "n2"


# ---- the client: kazoo faked ---------------------------------------------------------------------


class FakeResult:
    """kazoo's IAsyncResult, as far as the client uses it; settled at once or later by the test."""

    def __init__(self):
        self._done = False
        self.value = None
        self.exception = None
        self._callbacks = []

    def ready(self):
        return self._done

    def successful(self):
        return self._done and self.exception is None

    def settle(self, value=None, exception=None):
        self._done, self.value, self.exception = True, value, exception
        for cb in self._callbacks:
            cb(self)

    def rawlink(self, cb):
        self._callbacks.append(cb)
        if self._done:
            cb(self)


class FakeKazoo:
    """An in-memory znode tree behind kazoo's *_async calls. `script[call]` is a list of
    exceptions (or "hang": never answered) that the next calls of that name meet first;
    `refuse` raises the way kazoo does without a session (the result is ready at once)."""

    def __init__(self, connected=True):
        self.connected = connected
        self.started = self.stopped = False
        self.tree: dict[str, tuple[bytes, int]] = {}
        self.calls: list[tuple] = []
        self.script: dict[str, list] = {}
        self.refuse: BaseException | None = None

    def start_async(self):
        self.started = True

    def stop(self):
        self.stopped = True

    def close(self):
        pass

    def _answer(self, name, fn):
        self.calls.append(name)
        r = FakeResult()
        if self.refuse is not None:
            r.settle(exception=self.refuse)
            return r
        later = asyncio.get_running_loop().call_soon  # answered as from the server: after the call returns
        planned = self.script.get(name) or []
        if planned:
            first = planned.pop(0)
            if first != "hang":
                later(lambda: r.settle(exception=first))
            return r
        try:
            value = fn()
            later(lambda: r.settle(value))
        except Exception as e:  # the fake's own NoNode / NodeExists / BadVersion
            later(r.settle, None, e)
        return r

    def get_async(self, path):
        def get():
            if path not in self.tree:
                raise NoNodeError()
            data, version = self.tree[path]
            return data, SimpleNamespace(version=version)
        return self._answer("get", get)

    def set_async(self, path, value, version=-1):
        def set_():
            if path not in self.tree:
                raise NoNodeError()
            if version != -1 and version != self.tree[path][1]:
                raise BadVersionError()
            self.tree[path] = (value, self.tree[path][1] + 1)
            return SimpleNamespace(version=self.tree[path][1])
        return self._answer("set", set_)

    def create_async(self, path, value=b""):
        def create():
            if path in self.tree:
                raise NodeExistsError()
            parent = path.rsplit("/", 1)[0]
            if parent and parent not in self.tree:
                raise NoNodeError()
            self.tree[path] = (value, 0)
            return path
        return self._answer("create", create)

    def sync_async(self, path):
        return self._answer("sync", lambda: path)

    def get_children_async(self, path):
        def children():
            if path not in self.tree:
                raise NoNodeError()
            return [p[len(path) + 1:] for p in self.tree if p.startswith(path + "/")]
        return self._answer("get_children", children)


def _client(zk: FakeKazoo, **kw) -> ZooKeeperClient:
    return ZooKeeperClient({"n1": "10.9.0.11:2181"}, timeout=kw.pop("timeout", 0.3), session=lambda address: zk, **kw)


def _run(client: ZooKeeperClient, *ops: dict) -> list[dict]:
    async def go():
        try:
            return [await client.invoke("n1", op) for op in ops]
        finally:
            await client.close()

    return asyncio.run(go())


def _kinds(results):
    return [(r["type"], r["value"]) for r in results]


def test_write_creates_the_register_then_sets_it_and_cas_uses_the_version_it_read():
    zk = FakeKazoo()
    got = _run(_client(zk),
               {"f": "read", "key": "k1", "value": None},
               {"f": "write", "key": "k1", "value": 1},
               {"f": "write", "key": "k1", "value": 2},
               {"f": "cas", "key": "k1", "value": [2, 3]},
               {"f": "cas", "key": "k1", "value": [2, 4]},
               {"f": "read", "key": "k1", "value": None})
    assert _kinds(got) == [("ok", None), ("ok", 1), ("ok", 2), ("ok", [2, 3]), ("fail", None), ("ok", 3)]
    assert got[4]["error"] == "cas-mismatch"
    assert zk.calls == ["get", "set", "create", "set", "get", "set", "get", "get"]
    assert zk.tree["/kv-k1"] == (encode(3), 2)
    assert zk.started and zk.stopped


def test_a_cas_whose_version_moved_did_not_happen():
    zk = FakeKazoo()
    zk.tree["/kv-k"] = (encode(5), 7)
    zk.script["set"] = [BadVersionError()]  # someone wrote between our get and our set
    assert _kinds(_run(_client(zk), {"f": "cas", "key": "k", "value": [5, 6]})) == [("fail", None)]
    assert _kinds(_run(_client(zk), {"f": "cas", "key": "absent", "value": [5, 6]})) == [("fail", None)]


@pytest.mark.parametrize("error", [ConnectionLoss(), OperationTimeoutError(), SessionExpiredError()])
def test_a_write_sent_and_not_answered_may_have_happened(error):
    for op in ({"f": "write", "key": "k", "value": 1}, {"f": "cas", "key": "k", "value": [5, 6]},
               {"f": "add", "key": "s", "value": 3}):
        zk = FakeKazoo()
        zk.tree["/kv-k"] = (encode(5), 0)
        zk.tree["/set-s"] = (b"", 0)
        zk.script = {"set": [error], "create": [error]}
        got = _run(_client(zk), op)[0]
        assert got["type"] == "info" and type(error).__name__ in got["error"], (op, got)


def test_a_read_that_was_not_answered_changed_nothing():
    zk = FakeKazoo()
    zk.script["get"] = [ConnectionLoss()]
    assert _run(_client(zk), {"f": "read", "key": "k", "value": None})[0]["type"] == "fail"
    zk.script["get"] = ["hang"]
    assert _run(_client(zk), {"f": "read", "key": "k", "value": None})[0] == {
        "type": "fail", "value": None, "error": "timeout"}


def test_timeouts_are_info_only_once_the_effect_was_sent():
    zk = FakeKazoo()
    zk.tree["/kv-k"] = (encode(5), 0)
    zk.script["set"] = ["hang", "hang"]
    got = _run(_client(zk), {"f": "write", "key": "k", "value": 1}, {"f": "cas", "key": "k", "value": [5, 6]})
    assert [g["type"] for g in got] == ["info", "info"] and got[0]["error"] == "timeout"
    zk.script["get"] = ["hang"]  # a cas stuck in its get never sent its set
    assert _run(_client(zk), {"f": "cas", "key": "k", "value": [5, 6]})[0]["type"] == "fail"


def test_nothing_sent_without_a_session_is_a_fail():
    zk = FakeKazoo(connected=False)
    got = _run(_client(zk, timeout=0.2), {"f": "write", "key": "k", "value": 1})[0]
    assert got == {"type": "fail", "value": None, "error": "not connected"} and zk.calls == []
    for refusal in (ConnectionClosedError("Connection has been closed"), SessionExpiredError()):
        zk = FakeKazoo()
        zk.refuse = refusal  # kazoo's _call short-circuits: the result is settled before anything is queued
        assert _run(_client(zk), {"f": "write", "key": "k", "value": 1})[0]["type"] == "fail"


def test_a_session_being_made_is_waited_for():
    zk = FakeKazoo(connected=False)
    client = _client(zk, timeout=1.0)

    async def go():
        asyncio.get_running_loop().call_later(0.1, setattr, zk, "connected", True)
        try:
            return await client.invoke("n1", {"f": "write", "key": "k", "value": 1})
        finally:
            await client.close()

    assert asyncio.run(go())["type"] == "ok"


def test_sync_reads_sync_first():
    zk = FakeKazoo()
    zk.tree["/kv-k"] = (encode(9), 0)
    assert _kinds(_run(_client(zk, sync_reads=True), {"f": "read", "key": "k", "value": None})) == [("ok", 9)]
    assert zk.calls == ["sync", "get"]
    zk.script["sync"] = [ConnectionLoss()]
    assert _run(_client(zk, sync_reads=True), {"f": "read", "key": "k", "value": None})[0]["type"] == "fail"


def test_a_set_is_one_child_per_element_and_its_read_lists_them():
    zk = FakeKazoo()
    adds = [{"f": "add", "key": "set", "value": v} for v in (3, 1, 2)]
    got = _run(_client(zk), *adds, {"f": "read", "key": "set", "value": None})
    assert _kinds(got) == [("ok", 3), ("ok", 1), ("ok", 2), ("ok", [1, 2, 3])]
    assert zk.calls[:3] == ["create", "create", "create"]  # the first add made the parent
    assert "/set-set/3" in zk.tree
    empty = _run(_client(FakeKazoo()), {"f": "read", "key": "none", "value": None, "set": True})
    assert _kinds(empty) == [("ok", [])]


def test_an_add_whose_parent_could_not_be_made_was_not_sent():
    zk = FakeKazoo()
    zk.script["create"] = [NoNodeError(), ConnectionLoss()]  # child: no parent; parent: lost
    assert _run(_client(zk), {"f": "add", "key": "s", "value": 1})[0]["type"] == "fail"


def test_classification_by_error():
    assert classify_error("write", ConnectionLoss(), True)["type"] == "info"
    assert classify_error("write", ConnectionLoss(), False)["type"] == "fail"
    assert classify_error("write", NodeExistsError(), True)["type"] == "fail"
    assert classify_error("read", ConnectionLoss(), True)["type"] == "fail"
    assert classify_error("read-set", OperationTimeoutError(), True)["type"] == "fail"


# ---- the status probe ---------------------------------------------------------------------------


NAMES = {1: "n1", 2: "n2", 3: "n3"}
NOT_SERVING = "This ZooKeeper instance is not currently serving requests"
# What ZooKeeper 3.8.0 answered (four-letter srvr; the AdminServer's /commands/leader).
SRVR_LEADER = """Zookeeper version: 3.8.0-${mvngit.commit.id}, built on 2024-12-29 17:54 UTC
Latency min/avg/max: 0/0.0/0
Received: 3
Sent: 2
Connections: 1
Outstanding: 0
Zxid: 0x300000004
Mode: leader
Node count: 5
Proposal sizes last/min/max: 48/48/48
"""
SRVR_FOLLOWER = SRVR_LEADER.replace("Mode: leader", "Mode: follower").replace("Proposal sizes last/min/max: 48/48/48\n", "")
LEADER_OF = {"is_leader": False, "leader_id": 2, "leader_ip": "10.9.0.12", "command": "leader", "error": None}


def test_a_leader_and_a_follower_name_the_same_leader_and_epoch():
    lead = probe.status_view(probe.parse_srvr(SRVR_LEADER), 2, NAMES, me="n2")
    assert {k: lead[k] for k in ("role", "term", "leader", "commit_index", "zxid")} == {
        "role": "leader", "term": 3, "leader": "n2", "commit_index": 0x300000004, "zxid": "0x300000004"}
    follow = probe.status_view(probe.parse_srvr(SRVR_FOLLOWER), probe.leader_myid(LEADER_OF), NAMES, me="n1")
    assert (follow["role"], follow["term"], follow["leader"]) == ("follower", 3, "n2")
    assert probe.epoch(0x300000004) == 3 and probe.counter(0x300000004) == 4


def test_a_server_that_is_not_serving_is_looking():
    assert probe.parse_srvr(NOT_SERVING + "\n") == {}
    assert probe.status_view({}, None, NAMES) == {"role": "looking", "term": None, "leader": None, "commit_index": None}
    assert probe.leader_myid({"command": "leader", "error": NOT_SERVING}) is None
    assert probe.leader_myid({"command": "leader", "error": "server is not initialized"}) is None
    # no leader answer (Jetty still starting) while the server leads: it leads itself; a follower knows none
    assert probe.status_view(probe.parse_srvr(SRVR_LEADER), None, NAMES, "n3")["leader"] == "n3"
    assert probe.status_view(probe.parse_srvr(SRVR_FOLLOWER), None, NAMES, "n3")["leader"] is None
    assert probe.parse_srvr("<html>") is None and probe.status_view(None, 2, NAMES) is None


def test_wall_time_is_the_date_header_to_the_half_second():
    assert probe.wall_time("Tue, 01 Dec 2026 23:10:00 GMT") == 1796166600.5
    assert probe.wall_time(None) is None and probe.wall_time("yesterday") is None


def _probe_with(monkeypatch, srvr_text, handler):
    seen = []

    async def four_letter(ip, port, word, timeout):
        seen.append((ip, port, word))
        return srvr_text

    monkeypatch.setattr(plugin, "four_letter", four_letter)
    monkeypatch.setattr(plugin, "admin_http",
                        lambda timeout: httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    return seen


def test_the_probe_asks_the_node_it_is_given(monkeypatch):
    asked = []

    def handler(request):
        asked.append((request.url.host, request.url.port, request.url.path))
        if request.url.path == "/currentEpoch":
            return httpx.Response(200, text="4\n")
        return httpx.Response(200, json={**LEADER_OF, "leader_id": 3}, headers={"Date": "Tue, 01 Dec 2026 23:10:00 GMT"})

    seen = _probe_with(monkeypatch, SRVR_FOLLOWER, handler)
    target = ZooKeeper()
    target.node_command("n1", LAYOUT, TargetOptions())
    view = asyncio.run(target.status_probe("10.9.0.11:2181"))
    # the term is the currentEpoch (4), not the epoch of the follower's last transaction (3)
    assert (view["role"], view["term"], view["leader"], view["wall_time"]) == ("follower", 4, "n3", 1796166600.5)
    assert seen == [("10.9.0.11", 2181, "srvr")]
    assert sorted(asked) == [("10.9.0.11", 8080, "/commands/leader"), ("10.9.0.11", 8081, "/currentEpoch")]


def test_a_node_that_does_not_answer_is_none_and_one_without_jetty_yet_still_answers(monkeypatch):
    def refused(request):
        raise httpx.ConnectError("refused")

    _probe_with(monkeypatch, None, refused)
    assert asyncio.run(ZooKeeper().status_probe("10.9.0.11:2181")) is None
    _probe_with(monkeypatch, NOT_SERVING, refused)
    assert asyncio.run(ZooKeeper().status_probe("10.9.0.11:2181"))["role"] == "looking"
    _probe_with(monkeypatch, SRVR_FOLLOWER, lambda r: httpx.Response(200, text="<html>starting</html>"))
    view = asyncio.run(ZooKeeper().status_probe("10.9.0.11:2181"))
    assert (view["role"], view["leader"], view["wall_time"]) == ("follower", None, None)


def test_four_letter_words_over_a_real_socket():
    async def go():
        async def serve(reader, writer):
            word = await reader.read(4)
            writer.write(SRVR_LEADER.encode() if word == b"srvr" else b"")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            got = await plugin.four_letter("127.0.0.1", port, "srvr", 2.0)
        return got, await plugin.four_letter("127.0.0.1", port, "srvr", 0.5)

    got, after = asyncio.run(go())
    assert got == SRVR_LEADER and after is None  # the server is gone: no answer


def test_values_are_json():
    assert json.loads(encode({"a": [1]})) == {"a": [1]}


def test_each_client_slot_has_its_own_session_with_each_server():
    made: list[FakeKazoo] = []

    def session(address):
        made.append(FakeKazoo())
        return made[-1]

    client = ZooKeeperClient({"n1": "10.9.0.11:2181", "n2": "10.9.0.12:2181"}, timeout=0.3, session=session)

    async def go():
        try:
            for node, slot in (("n1", 0), ("n1", 1), ("n1", 0), ("n2", 0), ("n1", None)):
                await client.invoke(node, {"f": "read", "key": "k", "value": None, "client": slot})
        finally:
            await client.close()

    asyncio.run(go())
    # (n1, 0), (n1, 1), (n2, 0) and the final reads' own (n1, None): a slot's second read reuses its session
    assert len(made) == 4 and [len(zk.calls) for zk in made] == [2, 1, 1, 1]


def test_the_term_is_the_current_epoch_which_a_follower_takes_on_before_any_write_of_the_new_epoch():
    # Measured on 3.8.0 right after an election with no write: the follower's zxid is still of epoch 1.
    after = SRVR_FOLLOWER.replace("Zxid: 0x300000004", "Zxid: 0x100000000")
    follow = probe.status_view(probe.parse_srvr(after), 3, NAMES, me="n1", current_epoch=probe.parse_epoch_file("2"))
    assert (follow["term"], follow["commit_index"], follow["zxid"]) == (2, None, "0x100000000")
    # without the file server's answer, the zxid's epoch stands in
    assert probe.status_view(probe.parse_srvr(after), 3, NAMES, me="n1")["term"] == 1
    # a new leader's (epoch, 0) zxid starts its epoch; it is no transaction, so no commit index yet
    new_leader = SRVR_LEADER.replace("Zxid: 0x300000004", "Zxid: 0x200000000")
    lead = probe.status_view(probe.parse_srvr(new_leader), 3, NAMES, me="n3", current_epoch=2)
    assert (lead["role"], lead["term"], lead["commit_index"], lead["zxid"]) == ("leader", 2, None, "0x200000000")
    for junk in ("", "x", "-1", "99999999999", "<html>"):
        assert probe.parse_epoch_file(junk) is None
    assert probe.parse_epoch_file("12\n") == 12
