"""Nodes placed on several Docker engines: placement, image distribution, the run's networks on each engine,
cleanup on every engine, and the host forwarding rules between engines on one machine.

The engines here are fakes of the Docker SDK's client: these tests are about the harness's own logic (which
engine gets what), not about Docker. tests/test_multi_engine_docker.py runs a real cluster over two engines.
"""

from __future__ import annotations

import ipaddress
import subprocess

import pytest

from harness import engines
from harness.cluster import FIRST_NODE_HOST, SUBNET_POOL, DockerCluster
from targets.registry import get_target

# ---- placement ------------------------------------------------------------------------------------


def test_nodes_go_round_robin_over_the_hosts_given():
    assert engines.place(["n1", "n2", "n3", "n4", "n5"], ["a", "b"]) == {
        "n1": "a", "n2": "b", "n3": "a", "n4": "b", "n5": "a"}


def test_an_explicit_placement_wins_and_the_rest_go_round_robin():
    got = engines.place(["n1", "n2", "n3"], ["a", "b"], {"n2": "c"})
    assert got == {"n1": "a", "n2": "c", "n3": "b"}
    assert engines.engines_in(got) == ["a", "c", "b"]


def test_without_hosts_every_node_is_on_the_default_engine():
    assert set(engines.place(["n1", "n2"]).values()) == {engines.DEFAULT}
    assert engines.place(["n1"], ["default"]) == {"n1": engines.DEFAULT}


def test_a_placement_naming_a_node_the_cluster_lacks_is_an_error():
    with pytest.raises(engines.EngineError, match="n7"):
        engines.place(["n1", "n2"], explicit={"n7": "a"})


@pytest.mark.parametrize("text", ["", "a,,b", " , a", "a,"])
def test_docker_hosts_with_a_blank_name_is_refused(text):
    with pytest.raises(engines.EngineError):
        engines.parse_hosts(text)


def test_docker_hosts_keep_their_order_and_repeats():
    assert engines.parse_hosts("ctx-a, unix:///run/d2.sock,ctx-a") == ["ctx-a", "unix:///run/d2.sock", "ctx-a"]


def test_a_context_that_does_not_exist_is_one_line_naming_it():
    with pytest.raises(engines.EngineError, match="no Docker context named 'no-such-ctx'"):
        engines.connect("no-such-ctx")


def test_an_engine_url_that_answers_nothing_is_one_line_naming_it(tmp_path):
    with pytest.raises(engines.EngineError, match="cannot reach the Docker engine 'unix://"):
        engines.connect(f"unix://{tmp_path}/none.sock", timeout=2)


# ---- fake engines ------------------------------------------------------------------------------------


class FakeApi:
    def __init__(self, engine: FakeEngine):
        self.e = engine

    def networks(self):
        return [{"IPAM": {"Config": [{"Subnet": str(n["subnet"])}]}} for n in self.e.nets]

    def containers(self, all=False, filters=None):
        label = filters["label"]
        key, _, value = label.partition("=")
        return [c for c in self.e.containers if c["Labels"].get(key) == value]

    def get_image(self, tag, chunk_size=0):
        assert tag in self.e.images
        data = self.e.images[tag]
        self.e.saved += 1
        return iter([data[i:i + 4] for i in range(0, len(data), 4)])

    def load_image(self, stream):
        chunks = list(stream)
        self.e.load_chunks.append(len(chunks))
        if self.e.refuse_load:
            return iter([{"error": "no space left on device"}])
        blob = b"".join(chunks)
        tag, _, _ = blob.partition(b"|")
        self.e.images[tag.decode()] = blob
        return iter([{"stream": f"Loaded image: {tag.decode()}\n"}])


class FakeNetwork:
    def __init__(self, engine, name, subnet, labels):
        self.e, self.name, self.attrs = engine, name, {"Labels": labels}
        engine.nets.append({"name": name, "subnet": subnet, "net": self})

    def remove(self):
        self.e.nets = [n for n in self.e.nets if n["net"] is not self]


class FakeNetworks:
    def __init__(self, engine):
        self.e = engine

    def create(self, name, driver, ipam, labels, check_duplicate):
        subnet = ipaddress.ip_network(ipam["Config"][0]["Subnet"])
        if any(n["subnet"].overlaps(subnet) for n in self.e.world.all_nets()):
            raise AssertionError(f"{subnet} overlaps a network of another engine")
        return FakeNetwork(self.e, name, subnet, labels)


class FakeImages:
    def __init__(self, engine):
        self.e = engine

    def get(self, tag):
        import docker

        if tag not in self.e.images:
            raise docker.errors.ImageNotFound(tag)
        return tag


class FakeEngine:
    def __init__(self, world, name):
        self.world, self.name = world, name
        self.nets: list[dict] = []
        self.containers: list[dict] = []
        self.images: dict[str, bytes] = {}
        self.saved = 0
        self.load_chunks: list[int] = []
        self.refuse_load = False
        self.api = FakeApi(self)
        self.networks = FakeNetworks(self)
        self.images_api = FakeImages(self)


class World:
    def __init__(self, names):
        self.engines = {n: FakeEngine(self, n) for n in names}

    def all_nets(self):
        return [n for e in self.engines.values() for n in e.nets]


def as_client(engine: FakeEngine):
    """The SDK-shaped view: client.images is the images collection, client.api the low-level API."""
    class Client:
        api = engine.api
        networks = engine.networks
        images = engine.images_api
    Client.engine = engine
    return Client()


@pytest.fixture
def world(monkeypatch):
    w = World(["", "unix:///run/docker2.sock", "ctx-b"])
    clients = {n: as_client(e) for n, e in w.engines.items()}
    monkeypatch.setattr(engines, "connect", lambda name, timeout=120: clients[engines.canonical(name)])
    monkeypatch.setattr("harness.cluster.docker_client", lambda: clients[""])
    w.clients = clients
    return w


# ---- images ------------------------------------------------------------------------------------------


def test_an_engine_that_lacks_the_image_gets_it_streamed_from_the_home_engine(world):
    home, other = world.clients[""], world.clients["ctx-b"]
    home.engine.images["splitbrain-raftkv:abc"] = b"splitbrain-raftkv:abc|layers..."
    assert engines.distribute_image("splitbrain-raftkv:abc", home, other, progress=lambda s: None)
    assert other.engine.images["splitbrain-raftkv:abc"] == home.engine.images["splitbrain-raftkv:abc"]
    assert other.engine.load_chunks[0] > 1  # it went over in pieces, not as one blob
    # Sent once: the next cluster finds it there.
    assert not engines.distribute_image("splitbrain-raftkv:abc", home, other, progress=lambda s: None)
    assert home.engine.saved == 1


def test_an_engine_that_refuses_the_image_is_one_line_naming_it(world):
    home, other = world.clients[""], world.clients["ctx-b"]
    home.engine.images["t:1"] = b"t:1|x"
    other.engine.refuse_load = True
    with pytest.raises(engines.EngineError, match="engine ctx-b.*no space left on device"):
        engines.distribute_image("t:1", home, other, progress=lambda s: None, target_name="ctx-b")


# ---- a cluster over several engines --------------------------------------------------------------------


def three_engine_cluster():
    placement = {"n1": "", "n2": "unix:///run/docker2.sock", "n3": "ctx-b", "n4": "", "n5": "ctx-b"}
    return DockerCluster("multi-test", get_target("raftkv"), 5, placement=placement, log=lambda s: None)


def test_each_engine_gets_the_run_network_on_a_subnet_no_engine_has_and_each_node_an_address_in_its_own(
        world, monkeypatch):
    taken = ipaddress.ip_network("10.210.7.0/24")
    FakeNetwork(world.engines["ctx-b"], "someone-else", taken, {})
    opened = []
    monkeypatch.setattr(engines, "open_forwarding", lambda run_id, subnets, run=None: opened.append(subnets) or [])
    c = three_engine_cluster()
    c._create_network()
    assert set(c.subnets) == {"", "unix:///run/docker2.sock", "ctx-b"}
    subnets = list(c.subnets.values())
    assert len(set(subnets)) == 3 and taken not in subnets and all(s.subnet_of(SUBNET_POOL) for s in subnets)
    for i, n in enumerate(c.node_ids):
        ip = ipaddress.ip_address(c.ips[n])
        assert ip in c.subnets[c.placement[n]] and int(ip) & 0xFF == FIRST_NODE_HOST + i
    assert len(set(c.ips.values())) == 5
    # ctx-b is not a local socket: this machine cannot route it, so no host rules were opened.
    assert opened == []


def test_engines_all_on_this_machine_get_forwarding_between_exactly_the_runs_subnets(world, monkeypatch):
    opened = []
    monkeypatch.setattr(engines, "open_forwarding", lambda run_id, subnets, run=None: opened.append(subnets) or [1])
    c = DockerCluster("multi-local", get_target("raftkv"), 3, log=lambda s: None,
                      placement={"n1": "", "n2": "unix:///run/docker2.sock", "n3": ""})
    c._create_network()
    assert opened == [[str(s) for s in c.subnets.values()]] and len(opened[0]) == 2


def test_the_run_s_containers_are_listed_and_cleaned_on_every_engine(world, monkeypatch):
    c = three_engine_cluster()
    for name, e in world.engines.items():
        e.containers.append({"Labels": {"splitbrain.run": "multi-test", "splitbrain.node": f"on-{name or 'home'}"},
                             "State": "running"})
        e.containers.append({"Labels": {"splitbrain.run": "other-run"}, "State": "running"})
    assert len(c._listed()) == 3
    cleaned = []
    monkeypatch.setattr("harness.cluster.clean", lambda run_id, client: cleaned.append((run_id, client.engine.name)))
    c._forwarding_open = True
    closed = []
    monkeypatch.setattr(engines, "close_forwarding", lambda run_id, run=None: closed.append(run_id))
    c.teardown()
    assert sorted(cleaned) == sorted(("multi-test", n) for n in world.engines)
    assert closed == ["multi-test"]


def test_an_engine_unreachable_at_teardown_does_not_stop_the_others_being_cleaned(world, monkeypatch):
    c = three_engine_cluster()
    real = engines.connect

    def connect(name, timeout=120):
        if name == "ctx-b":
            raise engines.EngineError("cannot reach the Docker engine 'ctx-b': gone")
        return real(name)

    monkeypatch.setattr(engines, "connect", connect)
    cleaned, said = [], []
    monkeypatch.setattr("harness.cluster.clean", lambda run_id, client: cleaned.append(client.engine.name))
    c.log = said.append
    c.teardown()
    assert sorted(cleaned) == ["", "unix:///run/docker2.sock"]
    assert any("splitbrain clean --docker-hosts ctx-b" in s for s in said)


def test_a_joined_group_cannot_be_placed():
    with pytest.raises(ValueError):
        DockerCluster("x", get_target("raftkv"), 2, join=object(), placement={"n1": "a"})  # type: ignore[arg-type]


# ---- forwarding rules --------------------------------------------------------------------------------


class FakeIptables:
    """iptables -S / -I / -D over two tables, as lists of rule strings."""

    def __init__(self, refuse=False):
        self.tables = {"filter": ["-A FORWARD -j DOCKER-USER", "-A DOCKER-USER -j RETURN"],
                       "nat": ["-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"]}
        self.refuse = refuse

    def __call__(self, argv, capture_output, text, timeout):
        args = argv[3:]  # iptables -w 5 ...
        table, op, rest = args[1], args[2], args[3:]

        def shown(rule):
            return " ".join(f'"{p}"' if p.startswith("splitbrain:") else p for p in rule)

        if op == "-S":
            return subprocess.CompletedProcess(argv, 0, "\n".join(self.tables[table]) + "\n", "")
        if op == "-I":
            if self.refuse:
                return subprocess.CompletedProcess(argv, 1, "", "iptables: No chain/target/match by that name.")
            self.tables[table].insert(0, "-A " + shown(rest))
        elif op == "-D":
            line = "-A " + shown(rest)
            if line not in self.tables[table]:
                return subprocess.CompletedProcess(argv, 1, "", "Bad rule")
            self.tables[table].remove(line)
        return subprocess.CompletedProcess(argv, 0, "", "")


def test_forwarding_opens_both_ways_unmasqueraded_and_closes_only_its_own_run():
    ipt = FakeIptables()
    before = {t: list(r) for t, r in ipt.tables.items()}
    engines.open_forwarding("run-b", ["10.210.9.0/24", "10.210.10.0/24"], run=ipt)
    pairs = engines.open_forwarding("run-a", ["10.210.1.0/24", "10.210.2.0/24"], run=ipt)
    assert pairs == [("10.210.1.0/24", "10.210.2.0/24"), ("10.210.2.0/24", "10.210.1.0/24")]
    filt = [r for r in ipt.tables["filter"] if "run-a" in r]
    nat = [r for r in ipt.tables["nat"] if "run-a" in r]
    assert len(filt) == 4 and all("-j ACCEPT" in r and "DOCKER-USER" in r for r in filt)
    assert len(nat) == 2 and all("-j RETURN" in r and "POSTROUTING" in r for r in nat)
    assert engines.close_forwarding("run-a", run=ipt) == 6
    assert not any("run-a" in r for t in ipt.tables.values() for r in t)
    assert sum("run-b" in r for t in ipt.tables.values() for r in t) == 6  # another run's are left alone
    engines.close_forwarding("run-b", run=ipt)
    assert ipt.tables == before


def test_forwarding_that_iptables_refuses_is_one_line_and_leaves_nothing_behind():
    ipt = FakeIptables(refuse=True)
    with pytest.raises(engines.EngineError, match="No chain"):
        engines.open_forwarding("run-c", ["10.210.1.0/24", "10.210.2.0/24"], run=ipt)
    assert not any("run-c" in r for t in ipt.tables.values() for r in t)


# ---- the spec ------------------------------------------------------------------------------------------


def test_nodes_as_a_mapping_sets_how_many_and_where():
    from harness.spec import spec_from_mapping

    spec = spec_from_mapping({"nodes": {"n1": "ctx-a", "n2": "ctx-b", "n3": "ctx-a"}})
    assert spec.nodes == 3 and spec.placement == {"n1": "ctx-a", "n2": "ctx-b", "n3": "ctx-a"}


@pytest.mark.parametrize("nodes", [{"n1": "a", "n3": "b"}, {"a": "x"}, {"n1": ""}, {"n1": 3}])
def test_a_nodes_mapping_that_skips_a_node_or_names_no_engine_is_refused(nodes):
    from harness.spec import SpecError, spec_from_mapping

    with pytest.raises(SpecError):
        spec_from_mapping({"nodes": nodes})


def test_docker_hosts_are_refused_for_an_election_run_and_stray_placements_too():
    from harness.spec import SpecError, TestSpec, check_spec

    with pytest.raises(SpecError, match="one Docker engine"):
        check_spec(TestSpec(workload="election", recipe="etcd-lock", target="etcd", docker_hosts=("a", "b")))
    with pytest.raises(SpecError, match="n9"):
        check_spec(TestSpec(nodes=3, placement={"n9": "a"}))
