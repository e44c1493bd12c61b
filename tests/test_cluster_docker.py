"""The Docker backend and the nemesis against a real raftkv cluster: every fault verified, everything removed."""

from __future__ import annotations

import email.utils
import random
import time
import uuid

import pytest
from docker_cluster import docker_cluster

from harness.cluster import RUN_LABEL, DockerCluster, clean
from nemesis.core import Nemesis
from targets.base import TargetOptions
from targets.registry import get_target

pytestmark = pytest.mark.docker


def labelled(run_id: str) -> tuple[int, int]:
    import docker

    client = docker.from_env()
    sel = {"label": f"{RUN_LABEL}={run_id}"}
    return len(client.containers.list(all=True, filters=sel)), len(client.networks.list(filters=sel))


@pytest.fixture(scope="module")
def cluster():
    with docker_cluster("raftkv") as c:
        yield c


@pytest.fixture
def nemesis(cluster):
    nem = Nemesis(cluster, cluster.target, ["partition", "kill", "pause", "clock", "loss"], random.Random(3))
    yield nem
    nem.heal_all()


def chain_rules(cluster, node: str) -> list[str]:
    rc, out = cluster.exec(node, ["iptables", "-S"])
    assert rc == 0, out
    return [line for line in out.splitlines() if "SPLITBRAIN" in line]


def wait_leader(cluster, timeout=10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leaders = [n for n, s in cluster.probe_all().items() if s and s.get("role") == "leader"]
        if leaders:
            return leaders[0]
        time.sleep(0.1)
    raise AssertionError("no leader elected")


def test_up_then_teardown_leaves_nothing_labelled():
    run_id = f"test-{uuid.uuid4().hex[:8]}"
    c = DockerCluster(run_id, get_target("raftkv"), 3, TargetOptions(), log=lambda s: None)
    try:
        ips = c.up(timeout=60)
        assert len(set(ips.values())) == 3
        assert labelled(run_id) == (3, 1)
        assert all(c.probe_all().values())
    finally:
        started = time.monotonic()
        c.teardown()
        c.teardown()  # idempotent
        took = time.monotonic() - started
        clean(run_id)
    assert labelled(run_id) == (0, 0)
    assert took < 5


def test_two_runs_get_different_subnets(cluster):
    other = DockerCluster(f"test-{uuid.uuid4().hex[:8]}", get_target("raftkv"), 1, TargetOptions(), log=lambda s: None)
    try:
        other.up(timeout=60)
        assert other.subnet != cluster.subnet
    finally:
        other.teardown()


@pytest.mark.parametrize("grudge", ["halves", "majorities-ring", "bridge", "one-way", "isolate-leader"])
def test_partition_is_verified_and_heal_removes_exactly_our_rules(cluster, nemesis, grudge):
    wait_leader(cluster)
    done = nemesis.invoke({"f": "start-partition", "value": {"grudge": grudge, "seed": 1}})
    assert done["evidence"]["verified"] and done["evidence"]["blocked_pairs"] > 0
    assert any(chain_rules(cluster, n) for n in cluster.node_ids)
    assert nemesis.current_faults == [f"partition:{done['value']['grudge']}"]
    healed = nemesis.invoke({"f": "stop-partition"})
    assert healed["evidence"]["verified"] and healed["evidence"]["blocked_pairs"] == 0
    assert all(chain_rules(cluster, n) == [] for n in cluster.node_ids)


def test_kill_then_start_keeps_the_disk(cluster, nemesis):
    leader = wait_leader(cluster)
    client = cluster.target.client(cluster.addresses)
    from harness.cluster import run_sync

    assert run_sync(client.invoke(leader, {"f": "write", "key": "k", "value": 7}))["type"] == "ok"
    killed = nemesis.invoke({"f": "kill", "value": "leader"})
    node = killed["value"][0]
    assert node == leader
    assert killed["evidence"]["nodes"][node]["state"] == "exited"
    assert cluster.probe(node) is None
    started = nemesis.invoke({"f": "start"})
    assert started["value"] == [node] and started["evidence"]["verified"]
    rc, out = cluster.exec(node, ["sh", "-c", f"ls {cluster.layout.data_dir}"])
    assert rc == 0 and out.strip(), "data directory survived the crash"


def test_partition_survives_a_restart_of_a_partitioned_node(cluster, nemesis):
    drops = nemesis.invoke({"f": "start-partition", "value": {"grudge": "isolate-one", "seed": 5}})["value"]["drops"]
    victim = next(n for n in cluster.node_ids if drops.get(n))
    nemesis.invoke({"f": "kill", "value": victim})
    started = nemesis.invoke({"f": "start", "value": victim})
    assert started["evidence"]["reapplied"], "rules installed again in the new namespace"
    assert started["evidence"]["partition"]["verified"], "and verified from both sides"


def test_pause_then_resume(cluster, nemesis):
    paused = nemesis.invoke({"f": "pause", "value": "n2"})
    assert paused["evidence"]["nodes"]["n2"] == {"state": "paused", "answers": False}
    # A partition still reaches a paused node (through a helper in its namespace).
    part = nemesis.invoke({"f": "start-partition", "value": {"grudge": "isolate-one", "seed": 2}})
    assert part["evidence"]["verified"]
    resumed = nemesis.invoke({"f": "resume"})
    assert resumed["value"] == ["n2"] and resumed["evidence"]["verified"]


def test_clock_bump_is_visible_in_status_and_reset_undoes_it(cluster, nemesis):
    done = nemesis.invoke({"f": "bump-clock", "value": {"nodes": ["n3"], "delta_ms": 30_000}})
    ev = done["evidence"]["nodes"][0]
    assert ev["verified"] and abs(ev["observed_skew_s"] - 30) < 1
    assert abs(cluster.probe("n3")["wall_time"] - time.time() - 30) < 1
    reset = nemesis.invoke({"f": "reset-clock"})
    assert reset["evidence"]["nodes"][0]["verified"]
    assert abs(cluster.probe("n3")["wall_time"] - time.time()) < 1


def test_strobe_and_rate(cluster, nemesis):
    strobe = nemesis.invoke({"f": "strobe-clock", "value": {"nodes": ["n1"], "delta_ms": 5000, "period_ms": 200}})
    assert strobe["evidence"]["nodes"][0]["verified"]
    rate = nemesis.invoke({"f": "bump-clock", "value": {"nodes": ["n2"], "delta_ms": 0, "rate": 2.0}})
    ev = rate["evidence"]["nodes"][0]
    assert ev["rate_verified"] and ev["reported_rate"] == 2.0
    nemesis.heal_all()
    assert nemesis.current_faults == []


def test_loss_rules_installed_and_removed(cluster, nemesis):
    done = nemesis.invoke({"f": "start-loss", "value": {"nodes": ["n1", "n2"], "probability": 0.3}})
    assert done["evidence"]["rules"] == {"n1": 2, "n2": 2}
    assert any("statistic" in r for r in chain_rules(cluster, "n1"))
    time.sleep(1.0)
    stopped = nemesis.invoke({"f": "stop-loss"})
    assert set(stopped["evidence"]["dropped_packets"]) == {"n1", "n2"}
    assert chain_rules(cluster, "n1") == []


def test_heal_all_undoes_a_pile_of_faults(cluster, nemesis):
    nemesis.invoke({"f": "start-partition", "value": {"grudge": "halves"}})
    nemesis.invoke({"f": "kill", "value": "n1"})
    nemesis.invoke({"f": "pause", "value": "n2"})
    nemesis.invoke({"f": "bump-clock", "value": {"n3": -20.0}})
    nemesis.invoke({"f": "start-loss", "value": 0.2})
    assert len(nemesis.current_faults) == 5
    healed = nemesis.heal_all()
    assert set(healed["value"]) == {"resume", "start", "stop-partition", "stop-loss", "reset-clock"}
    assert nemesis.current_faults == []
    assert all(cluster.probe_all().values())
    assert all(chain_rules(cluster, n) == [] for n in cluster.node_ids)


def test_five_nodes_up_and_serving_under_10s_and_teardown_under_5s():
    from harness.images import ensure_image

    target = get_target("raftkv")
    ensure_image(target.image_recipe(), progress=lambda s: None)  # the figure is "with images cached"
    run_id = f"test-{uuid.uuid4().hex[:8]}"
    c = DockerCluster(run_id, target, 5, TargetOptions(), log=lambda s: None)
    try:
        started = time.monotonic()
        c.up(timeout=30)
        up_s = time.monotonic() - started
        assert all(c.probe_all().values())
    finally:
        started = time.monotonic()
        c.teardown()
        down_s = time.monotonic() - started
        clean(run_id)
    print(f"\n5 nodes: up and serving {up_s:.2f}s, teardown {down_s:.2f}s")  # shown with pytest -s
    assert up_s < 10, f"up took {up_s:.1f}s"
    assert down_s < 5, f"teardown took {down_s:.1f}s"
    assert labelled(run_id) == (0, 0)


class HttpServerTarget:
    """A test-only target: python3's http.server, with clocks skewed through libfaketime."""

    name = "http-server"
    peer_port = client_port = 8000

    def image_recipe(self):
        return get_target("raftkv").image_recipe()  # any image of ours has python3

    def node_command(self, node_id, cluster, options):
        return ["python3", "-m", "http.server", "8000"]

    def node_environment(self, node_id, cluster, options):
        return {}

    def clock_control(self):
        from targets.base import FAKETIME

        return FAKETIME

    def client(self, addresses, timeout=1.0):
        raise NotImplementedError

    async def status_probe(self, address, timeout=0.5):
        import asyncio

        host, _, port = address.rpartition(":")
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
            writer.write(b"HEAD / HTTP/1.0\r\n\r\n")
            line = await asyncio.wait_for(reader.readline(), timeout)
            writer.close()
        except (OSError, TimeoutError):
            return None
        return {"role": "none", "term": 0, "leader": None} if b" 200 " in line else None

    def unsupported_faults(self, faults):
        return []

    def bugs(self):
        return {}


def test_any_target_gets_partitions_kills_and_faketime_clocks():
    run_id = f"test-{uuid.uuid4().hex[:8]}"
    target = HttpServerTarget()
    c = DockerCluster(run_id, target, 3, TargetOptions(), log=lambda s: None)
    try:
        c.up(timeout=60)
        nem = Nemesis(c, target, ["partition", "kill", "clock"], random.Random(1))
        bumped = nem.invoke({"f": "bump-clock", "value": {"n1": 30.0}})
        assert bumped["evidence"]["nodes"][0]["verified"]
        rc, out = c.exec("n1", ["python3", "-c", "import time; print(time.time())"])
        assert abs(float(out) - time.time() - 30) < 2, "the node's own processes see the skew"
        # The node process itself (libfaketime caches the file) has followed by the time bump returns:
        # http.server's Date header is its own clock.
        rc, out = c.exec("n2", ["python3", "-c", "import urllib.request as u; "
                                f"print(u.urlopen('http://{c.ips['n1']}:8000/').headers['Date'])"])
        node_clock = email.utils.parsedate_to_datetime(out.strip()).timestamp()
        assert abs(node_clock - time.time() - 30) < 3, f"n1's server still answers with {out.strip()}"
        assert nem.invoke({"f": "start-partition", "value": {"grudge": "halves"}})["evidence"]["verified"]
        assert nem.invoke({"f": "kill", "value": "n2"})["evidence"]["verified"]
        healed = nem.heal_all()
        assert set(healed["value"]) == {"start", "stop-partition", "reset-clock"}
        rc, out = c.exec("n1", ["date", "+%s"])
        assert abs(int(out) - time.time()) < 2
    finally:
        c.teardown()
        clean(run_id)
    assert labelled(run_id) == (0, 0)


def test_client_classifies_every_outcome_as_definite_or_indefinite(cluster, nemesis):
    import asyncio

    leader = wait_leader(cluster)
    follower = next(n for n in cluster.node_ids if n != leader)

    async def scenario():
        client = cluster.target.client(cluster.addresses, timeout=0.5)
        call = client.invoke
        assert await call(leader, {"f": "write", "key": "c", "value": 1}) == {"type": "ok", "value": 1, "error": None}
        assert (await call(leader, {"f": "read", "key": "c", "value": None}))["value"] == 1
        absent = await call(leader, {"f": "read", "key": "never-written", "value": None})
        assert absent == {"type": "ok", "value": None, "error": None}
        assert (await call(leader, {"f": "cas", "key": "c", "value": [1, 2]}))["type"] == "ok"
        mismatch = await call(leader, {"f": "cas", "key": "c", "value": [1, 3]})
        assert mismatch["type"] == "fail" and "mismatch" in mismatch["error"]
        # A follower forwards to the leader, and the completion names the leader that served it.
        forwarded = await call(follower, {"f": "write", "key": "c", "value": 9})
        assert forwarded == {"type": "ok", "value": 9, "error": None, "node": leader}, forwarded
        assert await call(follower, {"f": "read", "key": "c", "value": None}) == {
            "type": "ok", "value": 9, "error": None, "node": leader}
        assert (await call(leader, {"f": "add", "key": "s", "value": 1}))["type"] == "ok"
        assert (await call(leader, {"f": "read", "key": "s", "value": None}))["value"] == [1]

        nemesis.invoke({"f": "pause", "value": follower})
        timed_out = await call(follower, {"f": "write", "key": "c", "value": 9})
        assert timed_out["type"] == "info" and timed_out["error"] == "timeout"
        nemesis.invoke({"f": "resume"})
        nemesis.invoke({"f": "kill", "value": follower})
        # A request on a fresh connection to a dead node is refused before anything is sent.
        down = await call(follower, {"f": "write", "key": "c", "value": 9})
        assert down["type"] == "fail" and down["error"].startswith("connect"), down
        await client.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("delay", [0.3, 1.5])
def test_teardown_during_up_leaves_nothing(delay):
    import threading

    from harness.cluster import ClusterError

    run_id = f"test-{uuid.uuid4().hex[:8]}"
    c = DockerCluster(run_id, get_target("raftkv"), 3, TargetOptions(), log=lambda s: None)
    errors = []

    def bring_up():
        try:
            c.up(timeout=30)
        except ClusterError as e:
            errors.append(e)

    th = threading.Thread(target=bring_up)
    th.start()
    time.sleep(delay)
    c.teardown()  # what the run loop's SIGINT/SIGTERM handler does
    th.join(60)
    c.teardown()
    try:
        assert labelled(run_id) == (0, 0)
    finally:
        clean(run_id)


def test_a_node_that_cannot_start_fails_up_quickly_with_its_log():
    from harness.cluster import ClusterError

    class Broken(HttpServerTarget):
        def node_command(self, node_id, cluster, options):
            return ["python3", "-c", "raise SystemExit('no such store: broken on purpose')"]

    run_id = f"test-{uuid.uuid4().hex[:8]}"
    c = DockerCluster(run_id, Broken(), 2, TargetOptions(), log=lambda s: None)
    started = time.monotonic()
    try:
        with pytest.raises(ClusterError, match="broken on purpose"):
            c.up(timeout=30)
        assert time.monotonic() - started < 15
    finally:
        c.teardown()
    assert labelled(run_id) == (0, 0)


def test_a_clock_skew_written_while_a_node_is_down_is_verified_when_it_starts(cluster, nemesis):
    nemesis.invoke({"f": "kill", "value": "n3"})
    bumped = nemesis.invoke({"f": "bump-clock", "value": {"n3": 15.0}})
    assert bumped["evidence"]["nodes"][0]["verified"] is False  # nothing to ask while it is down
    started = nemesis.invoke({"f": "start", "value": "n3"})
    assert started["evidence"]["clocks"][0]["verified"]
    assert abs(started["evidence"]["clocks"][0]["observed_skew_s"] - 15) < 1
