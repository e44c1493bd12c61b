"""The Redis election recipes and the standalone `redis` target without Docker: their pure parts.

redis-lock (redis-py's Lock through Sentinel) and redlock (pottery's Redlock on independent primaries):
the Sentinel order, the command budget, Redlock's validity and the majority counter behind its fencing
token (a model of the two scripts, checked with Hypothesis: tokens grow with holders); the `redis`
target's settings, command line, probe reading and refusals; `nemesis-on` in a spec; what the candidate
image installs from PyPI. The scripts themselves run in tests/test_redis_lock_docker.py.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.spec import SpecError, TestSpec, build_spec, check_spec, default_test_name
from targets.base import ClusterLayout, NodeAddress, TargetOptions
from targets.candidates.plugin import PIP_CA, REQUIREMENTS, Candidates
from targets.candidates.recipes import RECIPES, lease_held, redis_lock, redlock
from targets.redis.plugin import RedisSettings, StandaloneClient, server_args, status_view
from targets.redis_sentinel import deploy
from targets.redis_sentinel.plugin import CLOCK_REFUSAL, RedisSentinel
from targets.redis_sentinel.settings import SettingsError
from targets.registry import get_target

REPO = Path(__file__).resolve().parent.parent
LAYOUT = ClusterLayout(nodes=tuple(NodeAddress(f"n{i}", f"10.9.0.{i + 1}") for i in (1, 2, 3)),
                       peer_port=6379, client_port=6379)
SERVERS = {n.id: f"{n.ip}:6379" for n in LAYOUT.nodes}


# ---------------------------------------------------------------- the recipes


def test_both_recipes_are_registered_against_the_targets_they_need():
    assert RECIPES["redis-lock"].target == "redis-sentinel"
    assert RECIPES["redlock"].target == "redis"
    assert RECIPES["redis-lock"].module.startswith("targets.candidates.recipes.redis_lock:")
    assert RECIPES["redlock"].module.startswith("targets.candidates.recipes.redlock:")


def test_redis_lock_asks_the_sentinels_where_the_sentinel_target_runs_them():
    # The candidate image does not carry targets/redis_sentinel: the recipe's copies must agree with it.
    assert redis_lock.SENTINEL_PORT == deploy.SENTINEL_PORT
    assert redis_lock.MASTER_NAME == deploy.MASTER_NAME


@given(st.integers(1, 7), st.integers(1, 9))
def test_each_candidate_lists_every_sentinel_once_starting_from_its_own(n, k):
    servers = {f"n{i}": f"10.0.0.{i}:6379" for i in range(1, n + 1)}
    hosts = [(f"10.0.0.{i}", deploy.SENTINEL_PORT) for i in range(1, n + 1)]
    first = (k - 1) % n
    assert redis_lock.sentinel_order(servers, f"c{k}") == hosts[first:] + hosts[:first]


@given(st.floats(0.5, 30))
def test_one_command_costs_well_under_the_ttl(ttl):
    t = redis_lock.socket_timeout(ttl)
    assert 0.1 <= t <= 0.5 and t <= ttl / 4


def test_redlock_validity_is_the_ttl_less_the_drift_allowance_from_the_attempt_start():
    # pottery's: 1% of the TTL and 2 ms; for a 2 s TTL, 22 ms.
    assert redlock.valid_until(100.0, 2.0) == pytest.approx(101.978)
    assert redlock.majority(3) == 2 and redlock.majority(4) == 3 and redlock.majority(5) == 3


def test_a_fencing_token_needs_a_majority_that_says_the_lock_is_ours():
    assert redlock.fencing_token([4, 7, -1], 3) == 8
    assert redlock.fencing_token([4, None, -1], 3) is None  # one holder's answer, one silence, one "not ours"
    assert redlock.fencing_token([0, 0, 0], 3) == 1
    assert redlock.fencing_token([3, 3, None, None, -1], 5) is None


def _take(counters: list[int], holds: set[int], silent: set[int]) -> int | None:
    """One holder's token under READ_SCRIPT and RAISE_SCRIPT, modelled: it reads where it holds and is
    heard, and raises those servers to the token."""
    n = len(counters)
    read = [None if i in silent else (counters[i] if i in holds else -1) for i in range(n)]
    token = redlock.fencing_token(read, n)
    if token is None:
        return None
    for i in holds - silent:
        counters[i] = max(counters[i], token)
    return token


@given(st.integers(3, 7).flatmap(lambda n: st.tuples(st.just(n), st.lists(
    st.tuples(st.sets(st.integers(0, n - 1), min_size=n // 2 + 1), st.sets(st.integers(0, n - 1), max_size=n)),
    min_size=1, max_size=12))))
def test_redlock_tokens_grow_with_holders_whose_majorities_take_them(case):
    """Holders one after another (Redlock's promise), each holding on some majority and heard by some of it:
    every token a holder gets is above every token handed out before."""
    n, holders = case
    counters = [0] * n
    issued: list[int] = []
    for holds, silent in holders:
        token = _take(counters, holds, silent)
        if token is not None:
            assert all(token > t for t in issued), (issued, token)
            issued.append(token)


def test_lease_held_reads_the_clock_it_is_given():
    assert lease_held(None, 10.0, now=9.0) == (True, 10.0)
    assert lease_held(None, 10.0, now=10.0) == (False, "expired")
    assert lease_held("not-owned", 10.0, now=1.0) == (False, "not-owned")


def test_the_scripts_check_the_lock_before_they_touch_the_counter():
    # The order of the fencing token is that of the holds, because each script looks first.
    for script in (redis_lock.FENCE_SCRIPT, redlock.READ_SCRIPT, redlock.RAISE_SCRIPT):
        first = script.strip().splitlines()[0]
        assert "GET', KEYS[1])" in first


# ---------------------------------------------------------------- the candidate image


def test_the_candidate_image_installs_pottery_from_pypi_with_every_file_hash_pinned():
    recipe = Candidates("redlock").image_recipe()
    assert {"python3-redis", "python3-typing-extensions", "python3-pip", "python3-kazoo"} <= set(recipe.packages)
    dests = dict(recipe.files)
    assert REQUIREMENTS in dests and "targets/candidates/plugin.py" not in dests
    (pip,) = recipe.run
    assert "--require-hashes" in pip and "--no-deps" in pip and f"-r {REQUIREMENTS}" in pip
    assert (f"--cert {PIP_CA}" in pip) == (PIP_CA in dests)
    lines = [x for x in (REPO / REQUIREMENTS).read_text().splitlines() if x.strip() and not x.startswith("#")]
    assert {x.split("==")[0] for x in lines} == {"pottery", "mmh3"}
    assert all(re.search(r"==\S+ --hash=sha256:[0-9a-f]{64}$", x) for x in lines), lines


# ---------------------------------------------------------------- the redis target


def test_the_redis_target_is_built_in_and_shares_the_sentinel_targets_image():
    target = get_target("redis")
    assert target.name == "redis"
    assert target.image_recipe() == RedisSentinel().image_recipe()


def test_each_node_is_redis_server_alone_with_the_persistence_asked_for():
    args = server_args(LAYOUT, RedisSettings.parse({"appendonly": "yes", "appendfsync": "always"}))
    assert args[0] == "redis-server"
    pairs = dict(zip(args[1::2], args[2::2], strict=True))
    assert pairs == {"--bind": "0.0.0.0", "--protected-mode": "no", "--port": "6379", "--dir": LAYOUT.data_dir,
                     "--appendonly": "yes", "--appendfsync": "always"}
    cmd = get_target("redis").node_command("n2", LAYOUT, TargetOptions())
    assert "replicaof" not in " ".join(cmd) and "sentinel" not in " ".join(cmd)


@pytest.mark.parametrize("settings, words", [
    ({"appendonly": "maybe"}, "appendonly: expected yes or no"),
    ({"down_after_ms": 1000}, "target redis has no option 'down_after_ms'"),
    ({"appendfsyc": "always"}, "did you mean 'appendfsync'?"),
])
def test_bad_redis_options_are_one_line(settings, words):
    with pytest.raises(SettingsError, match=re.escape(words)):
        RedisSettings.parse(settings)
    assert get_target("redis").unsupported_options(settings) and "\n" not in get_target(
        "redis").unsupported_options(settings)[0]


def test_yaml_s_bare_no_is_appendfsync_no():
    assert RedisSettings.parse({"appendfsync": False}).appendfsync == "no"
    assert RedisSettings.parse({}) == RedisSettings(False, "everysec")


def test_a_standalone_master_leads_itself_in_no_term():
    by_ip = {n.ip: n.id for n in LAYOUT.nodes}
    master = {"role": "master", "offset": 0, "replicas": []}
    assert status_view(master, "n1", by_ip) == {"role": "leader", "term": None, "leader": "n1",
                                                 "redis_role": "master", "repl_offset": 0}
    replica = {"role": "slave", "master_ip": "10.9.0.3", "link": "connected", "offset": 5}
    assert status_view(replica, "n1", by_ip)["leader"] == "n2"
    assert status_view(None, "n1", by_ip) is None


def test_the_standalone_client_sends_to_the_server_it_is_bound_to():
    client = StandaloneClient(SERVERS)
    assert asyncio.run(client.primary("n3", "write")) == ("10.9.0.4", 6379)
    assert asyncio.run(client.primary("n1", "read-set")) == ("10.9.0.2", 6379)


def test_clock_and_vote_crash_are_refused_on_the_redis_target():
    target = get_target("redis")
    assert target.unsupported_faults(["clock"]) == [CLOCK_REFUSAL]
    assert "elect nothing" in target.unsupported_faults(["vote-crash"])[0]
    assert target.unsupported_faults(["kill", "pause", "partition"]) == []


# ---------------------------------------------------------------- nemesis-on


def _spec(**over) -> TestSpec:
    return build_spec(None, {"workload": "election", "recipe": "redis-lock", "target": "redis-sentinel", **over})


def test_nemesis_on_the_service_is_named_in_the_test_and_checked():
    spec = _spec(nemesis_on="service")
    check_spec(spec)
    assert default_test_name(spec).endswith("-on-service")
    assert not default_test_name(_spec()).endswith("-on-service")
    with pytest.raises(SpecError, match="nemesis-on: expected candidates or service, got 'servers'"):
        check_spec(_spec(nemesis_on="servers"))
    with pytest.raises(SpecError, match="only the election workload"):
        check_spec(build_spec(None, {"workload": "register", "nemesis_on": "service"}))


def test_a_clock_fault_on_the_sentinel_nodes_is_refused_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--workload", "election", "--recipe", "redis-lock",
                           "--nemesis", "clock", "--nemesis-on", "service", "--store", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "libfaketime" in proc.stderr, proc.stderr
    # The same fault on the candidates is theirs to take.
    from harness.commands.run import nemesis_problems

    assert nemesis_problems(_spec(nemesis=("clock",)).resolve(), get_target("redis-sentinel")) == []


def test_a_renewer_ticks_until_its_hold_is_no_longer_current():
    import threading

    from targets.candidates.recipes import ticks

    answers = iter([True, True, False, True])
    assert sum(1 for _ in ticks(0.0, threading.Lock(), lambda: next(answers))) == 2
