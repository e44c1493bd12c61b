"""The etcd target without Docker: its settings, the gateway requests it builds, and how it reads etcd's answers.

The canned bodies are what etcd 3.4.23's gateway answered in a real cluster
(tests/test_etcd_docker.py talks to one).
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from harness.cli import main
from targets.base import ClusterLayout, NodeAddress, TargetOptions
from targets.etcd import gateway, plugin
from targets.etcd.gateway import b64, build_request, classify, encode_value
from targets.etcd.plugin import NODE_SCRIPT, Etcd, EtcdClient
from targets.etcd.settings import EtcdSettings, SettingsError
from targets.registry import get_target

LAYOUT = ClusterLayout(nodes=tuple(NodeAddress(f"n{i}", f"10.9.0.{10 + i}") for i in (1, 2, 3)),
                       peer_port=2380, client_port=2379)

# Real answers of etcd 3.4.23.
N1, N2, N3 = "d526356179e46e33", "40e87b40e576e3d8", "3079572e005d3926"  # raft ids (hex) of n1, n2, n3
VARS_LEADER = {"cmdline": ["etcd"], "memstats": {}, "raft.status": {
    "id": N1, "term": 2, "vote": N1, "commit": 8, "lead": N1, "raftState": "StateLeader", "applied": 8,
    "progress": {N1: {"match": 8, "next": 9, "state": "StateReplicate"}}, "leadtransferee": "0"}}
VARS_FOLLOWER = {"raft.status": {"id": N2, "term": 2, "vote": N1, "commit": 8, "lead": N1,
                                 "raftState": "StateFollower", "applied": 8, "progress": {}, "leadtransferee": "0"}}
VARS_CANDIDATE = {"raft.status": {"id": N3, "term": 5, "vote": N3, "commit": 10, "lead": "0",
                                  "raftState": "StatePreCandidate", "applied": 10, "progress": {}}}
MEMBERS = {"header": {"cluster_id": "5222752907020173359", "member_id": str(int(N1, 16)), "raft_term": "2"},
           "members": [{"ID": str(int(N3, 16)), "name": "n3", "peerURLs": ["http://10.210.4.13:2380"]},
                       {"ID": str(int(N2, 16)), "name": "n2", "peerURLs": ["http://10.210.4.12:2380"]},
                       {"ID": str(int(N1, 16)), "name": "n1", "peerURLs": ["http://10.210.4.11:2380"]}]}
HEADER = {"header": {"cluster_id": "5222752907020173359", "member_id": "17591774859271055448",
                     "revision": "2", "raft_term": "2"}}
TIMED_OUT = {"error": "etcdserver: request timed out", "message": "etcdserver: request timed out", "code": 14}
NO_KEY = {"error": "etcdserver: key is not provided", "message": "etcdserver: key is not provided", "code": 3}


# ---- settings -----------------------------------------------------------------------------------


def test_defaults_are_etcds_own():
    s = EtcdSettings.parse({})
    assert (s.heartbeat_ms, s.election_ms, s.reads) == (100, 1000, "linearizable")
    assert s.etcd_flags() == ["--heartbeat-interval=100", "--election-timeout=1000"]


def test_raft_paper_timing_is_a_30ms_heartbeat_and_150_or_150_300():
    assert EtcdSettings.parse({"heartbeat": 30, "election_timeout": 150}).election_ms == 150
    assert EtcdSettings.parse({"heartbeat": 30, "election-timeout": "150-300"}).election_ms == 150


@pytest.mark.parametrize("settings, words", [
    ({"heartbeet": 30}, "no option 'heartbeet' (did you mean 'heartbeat'?)"),
    ({"lease_reads": True}, "no option 'lease_reads'"),
    ({"reads": "sync"}, "reads: expected linearizable or serializable"),
    ({"heartbeat": 75, "election_timeout": 150}, "under 5 heartbeats"),
    ({"election_timeout": "150-200"}, "[E, 2E) only; ask for 150-300"),
    ({"heartbeat": True}, "heartbeat: expected a whole number"),
    ({"election_timeout": 60000}, "over etcd's limit"),
])
def test_bad_settings_are_one_line(settings, words):
    with pytest.raises(SettingsError) as e:
        EtcdSettings.parse(settings)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert Etcd().unsupported_options(settings) == [str(e.value)]


def test_a_run_with_an_unknown_option_is_refused_before_it_starts(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("target: etcd\noptions: {reads: serialisable}\n")
    assert main(["run", "--spec", str(spec), "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("splitbrain run: options: reads: expected") and "\n" not in err
    assert not (tmp_path / "store").exists()


def test_clock_and_vote_crash_are_refused_with_one_line_each(tmp_path, capsys):
    lines = Etcd().unsupported_faults(["partition", "kill", "pause", "clock", "vote-crash"])
    assert [line.split(":")[0] for line in lines] == ["clock", "vote-crash"]
    assert "libfaketime" in lines[0] and "gofail" in lines[1]
    assert Etcd().unsupported_faults(["partition", "kill", "pause", "loss", "delay"]) == []
    assert main(["run", "--target", "etcd", "--nemesis", "clock", "--store", str(tmp_path / "store")]) == 2
    assert "clock: etcd is a Go program" in capsys.readouterr().err


# ---- the node ------------------------------------------------------------------------------------


def test_the_target_is_built_in_and_its_node_runs_the_script_the_image_holds():
    target = get_target("etcd")
    recipe = target.image_recipe()
    assert {"etcd-server", "etcd-client"} <= set(recipe.packages)
    assert f"{recipe.workdir}/{recipe.files[0][0]}" == NODE_SCRIPT
    cmd = target.node_command("n2", LAYOUT, TargetOptions(settings={"heartbeat": 30, "election_timeout": 150}))
    assert cmd[:3] == ["sh", NODE_SCRIPT, LAYOUT.cluster_key_file]
    flags = dict(a.split("=", 1) for a in cmd[3:])
    assert flags["--name"] == "n2" and flags["--data-dir"] == LAYOUT.data_dir
    assert flags["--initial-cluster"] == ("n1=http://10.9.0.11:2380,n2=http://10.9.0.12:2380,"
                                          "n3=http://10.9.0.13:2380")
    assert flags["--initial-cluster-state"] == "new"
    assert flags["--initial-advertise-peer-urls"] == "http://10.9.0.12:2380"
    assert flags["--advertise-client-urls"] == "http://10.9.0.12:2379"
    assert (flags["--heartbeat-interval"], flags["--election-timeout"]) == ("30", "150")
    assert target.node_environment("n2", LAYOUT, TargetOptions()) == {}


def test_the_client_reads_as_the_nodes_were_started():
    target = Etcd()
    assert target.client({"n1": "x:1"}).serializable is False
    target.node_command("n1", LAYOUT, TargetOptions(settings={"reads": "serializable"}))
    assert target.client({"n1": "x:1"}).serializable is True


# ---- requests ------------------------------------------------------------------------------------


def test_requests_are_base64_json_values():
    put = build_request({"f": "write", "key": 3, "value": 7})
    assert (put.path, put.body) == ("/v3/kv/put", {"key": b64("3"), "value": b64("7")})
    read = build_request({"f": "read", "key": 3, "value": None})
    assert (read.path, read.body) == ("/v3/kv/range", {"key": b64("3"), "serializable": False})
    assert build_request({"f": "read", "key": 3}, serializable=True).body["serializable"] is True
    cas = build_request({"f": "cas", "key": 3, "value": [1, 2]})
    assert cas.path == "/v3/kv/txn"
    assert cas.body["compare"] == [{"key": b64("3"), "target": "VALUE", "result": "EQUAL", "value": b64("1")}]
    assert cas.body["success"] == [{"request_put": {"key": b64("3"), "value": b64("2")}}]
    with pytest.raises(ValueError):
        build_request({"f": "delete", "key": 3})


def test_a_set_is_one_key_per_element_and_a_prefix_range():
    add = build_request({"f": "add", "key": "set", "value": 12})
    assert gateway.unb64(add.body["key"]) == b"set-element/set/12"
    read = build_request({"f": "read", "key": "set", "value": None}, set_keys=frozenset({"set"}))
    assert read.f == "read-set"
    assert gateway.unb64(read.body["key"]) == b"set-element/set/"
    assert gateway.unb64(read.body["range_end"]) == b"set-element/set0"  # "/" + 1
    assert gateway.prefix_end(b"a\xff") == b"b" and gateway.prefix_end(b"\xff") == b"\0"


# ---- answers ------------------------------------------------------------------------------------


def _read(key=1):
    return build_request({"f": "read", "key": key})


def test_ok_answers():
    kvs = {**HEADER, "kvs": [{"key": "aw==", "create_revision": "2", "mod_revision": "2", "version": "1",
                              "value": encode_value(5)}], "count": "1"}
    assert classify(_read(), 200, kvs) == {"type": "ok", "value": 5, "error": None}
    assert classify(_read(), 200, HEADER)["value"] is None  # absent key: no kvs
    assert classify(build_request({"f": "write", "key": 1, "value": 4}), 200, HEADER)["value"] == 4
    cas = build_request({"f": "cas", "key": 1, "value": [4, 5]})
    assert classify(cas, 200, {**HEADER, "succeeded": True}) == {"type": "ok", "value": [4, 5], "error": None}
    elements = {**HEADER, "kvs": [{"value": encode_value(v)} for v in (3, 1, 2)]}
    read_set = build_request({"f": "read", "key": "set", "set": True})
    assert classify(read_set, 200, elements)["value"] == [1, 2, 3]
    assert classify(read_set, 200, HEADER)["value"] == []


def test_a_cas_whose_compare_is_false_did_not_happen():
    # etcd leaves out a false `succeeded` (proto3 JSON)
    cas = build_request({"f": "cas", "key": 1, "value": [2, 3]})
    assert classify(cas, 200, HEADER) == {"type": "fail", "value": None, "error": "cas-mismatch"}


@pytest.mark.parametrize("status, doc, write_kind", [
    (503, TIMED_OUT, "info"),  # proposed, not known to be committed
    (503, {"error": "etcdserver: leader changed", "code": 14}, "info"),
    (500, {"error": "etcdserver: server stopped", "code": 2}, "info"),
    (504, {}, "info"),
    (400, NO_KEY, "fail"),  # validated before proposing
    (429, {"error": "etcdserver: too many requests", "code": 8}, "fail"),
    (500, {"error": "raft proposal dropped", "code": 2}, "fail"),
    (404, {}, "fail"),  # the gateway's router: "Not Found", no handler ran
])
def test_errors_are_fail_only_when_etcd_guarantees_nothing_was_applied(status, doc, write_kind):
    for op in ({"f": "write", "key": 1, "value": 2}, {"f": "cas", "key": 1, "value": [1, 2]},
               {"f": "add", "key": "set", "value": 9}):
        got = classify(build_request(op), status, doc)
        assert got["type"] == write_kind and got["value"] is None and str(status) in got["error"]
    assert classify(_read(), status, doc)["type"] == "fail"  # a read changes nothing


def _client(handler, **kw) -> EtcdClient:
    c = EtcdClient({"n1": "10.9.0.11:2379"}, timeout=0.5, **kw)
    c._http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return c


def _invoke(client: EtcdClient, op: dict):
    async def go():
        try:
            return await client.invoke("n1", op)
        finally:
            await client.close()

    return asyncio.run(go())


@pytest.mark.parametrize("error, write_kind", [
    (httpx.ConnectError("refused"), "fail"),  # never sent
    (httpx.ConnectTimeout("slow"), "fail"),
    (httpx.ReadTimeout("no answer"), "info"),  # sent
    (httpx.RemoteProtocolError("peer closed"), "info"),
    (httpx.ReadError("reset"), "info"),
])
def test_transport_errors(error, write_kind):
    def handler(request):
        raise error

    assert _invoke(_client(handler), {"f": "write", "key": 1, "value": 2})["type"] == write_kind
    assert _invoke(_client(handler), {"f": "read", "key": 1})["type"] == "fail"


def test_the_client_sends_what_it_built_and_a_set_read_follows_its_adds():
    seen = []

    def handler(request):
        seen.append((request.url.path, json.loads(request.content)))
        return httpx.Response(200, json=HEADER)

    client = _client(handler, serializable=True)

    async def go():
        await client.invoke("n1", {"f": "add", "key": "set", "value": 1})
        out = await client.invoke("n1", {"f": "read", "key": "set", "value": None})
        await client.close()
        return out

    assert asyncio.run(go()) == {"type": "ok", "value": [], "error": None}
    assert [p for p, _ in seen] == ["/v3/kv/put", "/v3/kv/range"]
    assert "range_end" in seen[1][1] and seen[1][1]["serializable"] is True


def test_a_plain_text_error_is_read_by_its_status_and_an_unparsable_ok_is_unknown():
    not_found = _client(lambda r: httpx.Response(404, text="Not Found\n"))
    assert _invoke(not_found, {"f": "write", "key": 1, "value": 2})["type"] == "fail"
    garbled = _client(lambda r: httpx.Response(200, text="{"))
    assert _invoke(garbled, {"f": "write", "key": 1, "value": 2})["type"] == "info"


# ---- the status probe ---------------------------------------------------------------------------


NAMES = gateway.member_names(MEMBERS)


def test_member_ids_map_to_node_ids():
    assert NAMES == {int(N3, 16): "n3", int(N2, 16): "n2", int(N1, 16): "n1"}
    assert gateway.member_names({}) == {} and gateway.member_names(None) == {}


def _view(doc):
    return gateway.status_view(gateway.raft_status(doc), NAMES)


def test_status_view_is_the_raft_nodes_own_status():
    view = _view(VARS_LEADER)
    assert {k: view[k] for k in ("role", "term", "leader", "commit_index", "id")} == {
        "role": "leader", "term": 2, "leader": "n1", "commit_index": 8, "id": "n1"}
    assert (_view(VARS_FOLLOWER)["role"], _view(VARS_FOLLOWER)["leader"]) == ("follower", "n1")
    alone = _view(VARS_CANDIDATE)
    assert (alone["role"], alone["term"], alone["leader"], alone["id"]) == ("pre-candidate", 5, None, "n3")
    assert gateway.raft_status({"cmdline": []}) is None and gateway.raft_status({"raft.status": None}) is None
    assert gateway.status_view({"term": 2}, NAMES) is None


def _probe_with(monkeypatch, handler):
    monkeypatch.setattr(plugin, "http_client",
                        lambda timeout: httpx.AsyncClient(transport=httpx.MockTransport(handler)))


def test_the_probe_lists_members_once_per_new_id(monkeypatch):
    calls = []

    def handler(request):
        calls.append(request.url.path)
        if request.url.path == "/debug/vars":
            return httpx.Response(200, json=VARS_LEADER)
        return httpx.Response(200, json=MEMBERS)

    _probe_with(monkeypatch, handler)
    target = Etcd()
    first = asyncio.run(target.status_probe("10.9.0.11:2379"))
    second = asyncio.run(target.status_probe("10.9.0.11:2379"))
    assert first["leader"] == second["leader"] == "n1"
    assert calls == ["/debug/vars", "/v3/cluster/member/list", "/debug/vars"]


def test_a_node_that_does_not_answer_is_none(monkeypatch):
    def handler(request):
        raise httpx.ConnectError("refused")

    _probe_with(monkeypatch, handler)
    assert asyncio.run(Etcd().status_probe("10.9.0.11:2379")) is None
    _probe_with(monkeypatch, lambda r: httpx.Response(200, json={"cmdline": []}))  # raft not started
    assert asyncio.run(Etcd().status_probe("10.9.0.11:2379")) is None


# ---- the impostor (nemesis/impostor.py) ------------------------------------------------------------

def _rogue(claim: str, key: str):
    from targets.base import Rogue

    members = {n: (f"10.0.0.{i}", 2380) for i, n in enumerate(["n1", "n2", "n3"], 11)}
    return Rogue(claim, ("10.0.0.200", 2380), members, 1_000_007, key, "/var/lib/splitbrain/cluster.key")


def test_an_impostor_claiming_a_member_restarts_as_that_member_would():
    plan = Etcd().impostor(_rogue("n2", "wrong"))
    cmd = plan.command
    assert cmd[0] == "etcd" and plan.term is None  # etcd cannot be told a term
    assert "--name=n2" in cmd and "--initial-cluster-state=existing" in cmd
    assert "--initial-advertise-peer-urls=http://10.0.0.12:2380" in cmd  # the member's own URL...
    assert "--listen-peer-urls=http://10.0.0.200:2380" in cmd  # ... from the rogue's address
    assert "--initial-cluster=n1=http://10.0.0.11:2380,n2=http://10.0.0.12:2380,n3=http://10.0.0.13:2380" in cmd
    assert any(a.startswith("--initial-cluster-token=splitbrain-") for a in cmd)
    assert not any(a.startswith("--initial-cluster-token") for a in Etcd().impostor(_rogue("n2", "none")).command)


def test_an_impostor_with_a_new_name_adds_itself_and_a_stolen_key_goes_through_node_sh():
    cmd = Etcd().impostor(_rogue("n4", "stolen")).command
    assert cmd[:3] == ["sh", NODE_SCRIPT, "/var/lib/splitbrain/cluster.key"]
    assert "--initial-cluster-state=new" in cmd
    assert any(a.endswith(",n4=http://10.0.0.200:2380") for a in cmd if a.startswith("--initial-cluster="))
    assert Etcd().peer_auth().startswith("none: ")
