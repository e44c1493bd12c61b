"""The disk faults' pure parts: what the unsynced layer puts back, how losses are drawn, who refuses them.

The layer itself (a FUSE mount in a node's container) is driven for real in tests/test_disk_docker.py.
"""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nemesis.family import LEADER, layer_problem
from nemesis.lose_unsynced import LOSE_UNSYNCED, PROGRAM, SOCKET, draw_nodes, host_problem
from nemesis.registry import families, node_layers, op_families
from nemesis.unsyncedfs import PAGE, Unsynced, differing, restore
from targets.base import ClusterLayout, NodeAddress, no_data_dir, target_data_dir
from targets.registry import get_target

LAYOUT = ClusterLayout(nodes=(NodeAddress("n1", "10.0.0.11"),), peer_port=1, client_port=2)


# ---- Unsynced: every write since a file's last fsync is what a drop takes away ------------------------

class File:
    """A file as the layer sees it: its bytes, tracked by an Unsynced the way the FUSE handlers call it."""

    def __init__(self, data: bytes, unsynced: Unsynced, key="f"):
        self.data = bytearray(data)
        self.u, self.key = unsynced, key

    def read(self, off: int, n: int) -> bytes:
        return bytes(self.data[off:off + n])

    def write(self, off: int, buf: bytes) -> None:
        self.u.before_write(self.key, off, len(buf), len(self.data), self.read)
        if len(self.data) < off:
            self.data.extend(b"\0" * (off - len(self.data)))
        self.data[off:off + len(buf)] = buf

    def truncate(self, size: int) -> None:
        self.u.before_truncate(self.key, size, len(self.data), self.read)
        del self.data[size:]
        self.data.extend(b"\0" * (size - len(self.data)))

    def fsync(self) -> None:
        self.u.synced(self.key)

    def dropped(self) -> tuple[bytes, int]:
        state = self.u.files.get(self.key)
        return (bytes(self.data), 0) if state is None else restore(state, bytes(self.data))


ops = st.lists(st.one_of(
    st.tuples(st.just("write"), st.integers(0, 5 * PAGE), st.binary(min_size=1, max_size=2 * PAGE + 7)),
    st.tuples(st.just("truncate"), st.integers(0, 6 * PAGE)),
    st.tuples(st.just("fsync")),
), max_size=25)


@settings(max_examples=300, deadline=None)
@given(initial=st.binary(max_size=3 * PAGE + 100), ops=ops, new=st.booleans())
def test_a_drop_gives_back_exactly_the_content_of_the_last_fsync(initial, ops, new):
    u = Unsynced()
    f = File(b"" if new else initial, u)
    if new:
        u.created("f")  # created since its directory's last sync: nothing of it is durable
        synced = b""
    else:
        synced = initial  # a file found at mount: what is on disk is durable
    for op in ops:
        if op[0] == "write":
            f.write(op[1], op[2])
        elif op[0] == "truncate":
            f.truncate(op[1])
        else:
            f.fsync()
            synced = bytes(f.data)
    content, changed = f.dropped()
    assert content == synced
    assert changed >= sum(a != b for a, b in zip(f.data, synced, strict=False))  # what differs is counted
    if bytes(f.data) == synced:
        assert changed == 0


def test_an_append_only_log_loses_its_unsynced_tail_and_nothing_before():
    u = Unsynced()
    f = File(b"header..", u)
    f.write(8, b"rec1")
    f.fsync()
    f.write(12, b"rec2")
    f.write(16, b"rec3")
    content, changed = f.dropped()
    assert content == b"header..rec1" and changed == 8
    assert u.files["f"].pages == {}  # appends past the synced size save nothing


def test_an_overwrite_in_place_saves_the_page_once_before_its_first_change():
    u = Unsynced()
    reads = []
    f = File(b"a" * (2 * PAGE), u)
    f.read, plain = (lambda off, n: reads.append((off, n)) or plain(off, n)), f.read
    f.write(PAGE + 10, b"bb")
    f.write(PAGE + 20, b"cc")
    assert reads == [(PAGE, PAGE)]
    assert f.dropped()[0] == b"a" * (2 * PAGE)


def test_differing_counts_bytes_and_length():
    assert differing(b"abc", b"abc") == 0
    assert differing(b"abd", b"abc") == 1
    assert differing(b"ab", b"abcd") == 2
    assert differing(bytes(1000), bytes(999) + b"x") == 1


# ---- the family: draws, refusals, its node layer -------------------------------------------------------

NODES = ["n1", "n2", "n3", "n4", "n5"]


@given(seed=st.integers(0, 10_000), busy=st.sets(st.sampled_from(NODES), max_size=4))
def test_a_drawn_loss_hits_free_nodes_only(seed, busy):
    hit = draw_nodes(random.Random(seed), NODES, busy)
    assert hit
    assert all(n == LEADER or (n in NODES and n not in busy) for n in hit)
    assert hit == draw_nodes(random.Random(seed), NODES, busy)  # seeded


def test_the_draw_favours_losing_every_node_at_once():
    rng = random.Random(7)
    hits = [draw_nodes(rng, NODES, set()) for _ in range(2000)]
    every = sum(h == tuple(NODES) for h in hits) / len(hits)
    majority = sum(len(h) == 3 for h in hits) / len(hits)
    assert 0.45 < every < 0.55 and 0.15 < majority < 0.25
    assert any(h == (LEADER,) for h in hits) and any(len(h) == 1 and h != (LEADER,) for h in hits)


def test_host_problem_needs_a_fuse_device_and_the_kernel_filesystem(tmp_path):
    fs = tmp_path / "filesystems"
    fs.write_text("nodev\tproc\nnodev\tfuse\n\tfuseblk\n")
    assert "no " in host_problem(dev=str(tmp_path / "missing"), filesystems=str(fs))
    plain = tmp_path / "plain"
    plain.write_text("")
    assert "not a character device" in host_problem(dev=str(plain), filesystems=str(fs))
    assert host_problem(dev="/dev/null", filesystems=str(fs)) is None
    fs.write_text("nodev\tproc\n\tfuseblk\n")
    assert "fuse" in host_problem(dev="/dev/null", filesystems=str(fs))


class _Stub:
    node_ids = ["n1", "n2", "n3"]


def test_every_target_with_state_declares_its_data_dir_and_the_candidates_refuse():
    for name in ("raftkv", "etcd", "zookeeper", "patroni", "redis-sentinel"):
        target = get_target(name)
        assert target_data_dir(target, LAYOUT) == LAYOUT.data_dir
        assert no_data_dir(target, "lose-unsynced") == []
    from targets.candidates.plugin import Candidates

    [line] = no_data_dir(Candidates("etcd-lock"), "lose-unsynced")
    assert line.startswith("lose-unsynced: target candidates declares no data dir")
    assert "\n" not in line
    assert target_data_dir(Candidates("etcd-lock"), LAYOUT) is None
    assert any("declares no data dir" in p for p in LOSE_UNSYNCED.problems(_Stub(), Candidates("etcd-lock")))


def test_a_cluster_without_layers_refuses_lose_unsynced_in_one_line():
    from targets.raftkv.loopback import LocalCluster

    assert layer_problem(_Stub(), "lose-unsynced") is None
    problems = LOSE_UNSYNCED.problems(LocalCluster.__new__(LocalCluster), get_target("raftkv"))
    assert len(problems) == 1 and "Docker backend" in problems[0]


def test_only_runs_with_the_family_get_its_layer_and_it_wraps_the_node_command():
    raftkv = get_target("raftkv")
    assert node_layers(["kill", "partition"], raftkv) == ()
    [layer] = node_layers(["kill", "lose-unsynced", "lose-unsynced"], raftkv)
    assert layer.devices == ("/dev/fuse",) and layer.cap_add == ("SYS_ADMIN",)
    assert set(layer.image.packages) == {"fuse3", "python3-pyfuse3"}
    argv = layer.wrap(["python3", "-m", "targets.raftkv"], LAYOUT)
    assert argv == ["python3", PROGRAM, "run", "--dir", LAYOUT.data_dir, "--socket", SOCKET, "--",
                    "python3", "-m", "targets.raftkv"]
    assert PROGRAM == f"{layer.image.workdir}/{layer.image.files[0][0]}"


def test_the_family_is_registered_and_its_ops_are_its_own():
    assert "lose-unsynced" in families()
    table = op_families()
    assert table["lose-unsynced"] is LOSE_UNSYNCED and table["restart-unsynced"] is LOSE_UNSYNCED
    norm = LOSE_UNSYNCED.validate({"f": "lose-unsynced", "value": {"nodes": ["n1", "n2"]}}, NODES)
    assert norm == {"f": "lose-unsynced", "nodes": ["n1", "n2"]}


def test_a_layer_image_tag_is_a_docker_reference_that_follows_its_inputs(tmp_path):
    from harness.images import layer_tag
    from targets.image import ImageRecipe

    src = tmp_path / "x.py"
    src.write_text("a")
    recipe = ImageRecipe(name="unsyncedfs", files=(("x.py", src),), packages=("fuse3",), workdir="/opt/l")
    tag = layer_tag("splitbrain-raftkv:0123456789ab", recipe)
    assert re.fullmatch(r"[a-z0-9]+(?:(?:[._-]|__)[a-z0-9]+)*:[0-9a-f]{12}", tag)
    assert layer_tag("splitbrain-raftkv:ffffffffffff", recipe) != tag
    src.write_text("b")
    assert layer_tag("splitbrain-raftkv:0123456789ab", recipe) != tag


# ---- raftkv's no-fsync --------------------------------------------------------------------------------

def test_no_fsync_is_a_raftkv_bug_that_turns_the_wal_fsync_off(tmp_path):
    from targets.raftkv.__main__ import config_from_args
    from targets.raftkv.node import BUGS

    assert "no-fsync" in BUGS and "no-fsync" in get_target("raftkv").bugs()
    key = tmp_path / "key"
    key.write_text("0" * 64 + "\n")
    base = ["--id", "n1", "--peers", "n1=127.0.0.1:7001", "--client", "127.0.0.1:8001", "--data", str(tmp_path),
            "--cluster-key-file", str(key)]
    assert config_from_args(base).fsync is True
    assert config_from_args([*base, "--bug", "no-fsync"]).fsync is False


@pytest.mark.parametrize("fsync", [True, False])
def test_storage_fsyncs_the_wal_only_without_the_bug(tmp_path, fsync, monkeypatch):
    import os

    from targets.raftkv.storage import Storage

    calls = []
    for name in ("fsync", "fdatasync"):  # the WAL is synced with fdatasync where the OS has one
        if hasattr(os, name):
            real = getattr(os, name)
            monkeypatch.setattr(os, name, lambda fd, real=real: calls.append(fd) or real(fd))
    s = Storage(tmp_path, fsync=fsync)
    s.open()
    calls.clear()
    s.persist(hard_state={"term": 1, "vote": None, "commit": 0}, entries=[{"index": 1, "term": 1}])
    s.close()
    assert bool(calls) is fsync


# ---- corrupt ------------------------------------------------------------------------------------------

@given(data=st.binary(min_size=1, max_size=300), seed=st.integers(0, 1000), bits=st.integers(1, 16))
def test_a_bitflip_changes_exactly_the_bits_it_names(data, seed, bits):
    from nemesis.corrupt import damage, flip_bits

    out, done = damage(data, "bitflip", random.Random(seed), bits=bits)
    positions = done["flipped_bits"]
    assert len(positions) == min(bits, len(data) * 8) and len(out) == len(data)
    diff = sum(bin(a ^ b).count("1") for a, b in zip(data, out, strict=True))
    assert diff == len(positions)
    assert flip_bits(out, positions) == data  # flipping again undoes it


@given(data=st.binary(min_size=1, max_size=300), seed=st.integers(0, 1000))
def test_a_truncate_keeps_a_strict_prefix(data, seed):
    from nemesis.corrupt import damage

    out, done = damage(data, "truncate", random.Random(seed))
    assert data.startswith(out) and len(out) < len(data)
    assert done == {"truncated_to": len(out), "dropped_bytes": len(data) - len(out)}
    assert damage(data, "truncate", random.Random(seed), keep=0.0)[0] == b""


def test_corrupt_chooses_among_small_files_or_those_its_pattern_names():
    from nemesis.corrupt import MAX_BYTES, choose, listing

    files = listing(f"12 wal\n0 LOCK\n28 FORMAT\n{MAX_BYTES + 1} member/wal/0.wal\n\n")
    assert files == [("wal", 12), ("FORMAT", 28), ("member/wal/0.wal", MAX_BYTES + 1)]
    assert sorted(choose(files, None, random.Random(1))) == ["FORMAT", "wal"]
    assert choose(files, "member/wal/*", random.Random(1)) == ["member/wal/0.wal"]
    assert choose(files, None, random.Random(5)) == choose(files, None, random.Random(5))


def test_corrupt_ops_are_validated_in_one_line():
    from nemesis.corrupt import CORRUPT
    from nemesis.errors import NemesisOpError

    assert CORRUPT.validate({"f": "corrupt", "value": {"nodes": ["n1"]}}, NODES) == \
        {"f": "corrupt", "nodes": ["n1"], "mode": "bitflip"}
    assert CORRUPT.validate({"f": "corrupt", "value": {"nodes": ["n2"], "mode": "truncate", "keep": 0.5,
                                                       "file": "wal"}}, NODES)["keep"] == 0.5
    for bad in ({"mode": "shred"}, {"bits": 0}, {"bits": 1.5}, {"keep": 1}, {"file": "/etc/passwd"}):
        with pytest.raises(NemesisOpError) as e:
            CORRUPT.validate({"f": "corrupt", "value": {"nodes": ["n1"], **bad}}, NODES)
        assert "\n" not in str(e.value) and str(e.value).startswith("corrupt: ")
    draw = CORRUPT.draw(random.Random(3), NODES, set())
    assert draw.f == "corrupt" and draw.value["mode"] in ("bitflip", "truncate") and len(draw.reserved) == 1
    from targets.candidates.plugin import Candidates

    assert CORRUPT.problems(_Stub(), get_target("raftkv")) == []
    assert "declares no data dir" in CORRUPT.problems(_Stub(), Candidates("etcd-lock"))[0]


def test_raftkv_reports_the_term_it_has_written_not_one_still_in_memory(tmp_path):
    # A kill between a candidate's new term and its Ready being written brought the node back one term
    # lower, and the observer had already seen the higher one: the split-brain checker called it lost.
    from targets.raftkv.node import NodeConfig
    from targets.raftkv.server import RaftKVServer, ServerConfig

    peers = ("n1",)  # alone, it wins its pre-vote and its election at once
    config = ServerConfig(node=NodeConfig(id="n1", peers=peers), peer_addrs={p: ("127.0.0.1", 1) for p in peers},
                          client_addr=("127.0.0.1", 2), data_dir=str(tmp_path), cluster_key=b"k" * 32)
    server = RaftKVServer(config)
    server.open_storage()
    try:
        for _ in range(100):  # past any election timeout: it campaigns, in memory (nothing drives its Ready)
            server.node.tick()
        assert server.node.status()["term"] >= 1
        assert server.status()["term"] == 0
    finally:
        server.storage.close()
