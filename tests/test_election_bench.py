"""`splitbrain bench election` without Docker: ranges, statistics, the CDF, the SVG, the table, the
argument checks, and the measuring loop against a fake cluster whose failover time we choose."""

from __future__ import annotations

import asyncio
import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.cli import main
from harness.cluster import ClusterError
from harness.commands.bench import run_election
from harness.election_bench import (
    PAPER,
    BenchPlan,
    BenchSettings,
    ElectionBench,
    RangeError,
    StabilityError,
    TimeoutRange,
    cdf_points,
    format_table,
    parse_ranges,
    percentile,
    render_cdf_svg,
    summarize,
)

# ---- ranges ---------------------------------------------------------------------


def test_ranges_are_parsed_in_the_order_given():
    assert parse_ranges("150-300, 12-24,150-150") == [TimeoutRange(150, 300), TimeoutRange(12, 24),
                                                      TimeoutRange(150, 150)]


@pytest.mark.parametrize("text", ["", "150", "150-", "-300", "300-150", "a-b", "150-300,,12-24", "1-5",
                                  "150-300,150-300", "150.5-300"])
def test_a_malformed_range_list_is_refused(text):
    with pytest.raises(RangeError):
        parse_ranges(text)


def test_the_heartbeat_is_half_the_lower_bound_as_in_the_paper():
    assert TimeoutRange(150, 300).heartbeat() == 75
    assert TimeoutRange(12, 24).heartbeat() == 6
    assert TimeoutRange(3, 3).heartbeat() == 1


# ---- statistics -----------------------------------------------------------------


def test_percentiles_are_measured_values_by_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 90) == 90
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_timeouts_count_as_trials_but_not_in_the_downtime_figures():
    s = summarize([300.0, None, 100.0, 200.0, None])
    assert (s.trials, s.timeouts) == (5, 2)
    assert (s.min, s.median, s.max) == (100.0, 200.0, 300.0)
    assert s.mean == pytest.approx(200.0)


def test_a_range_of_only_timeouts_has_no_figures():
    s = summarize([None, None])
    assert (s.trials, s.timeouts, s.min, s.median, s.max) == (2, 2, None, None, None)


def test_the_cdf_of_a_range_with_timeouts_stops_below_one():
    pts = cdf_points([30.0, None, 10.0, 20.0])
    assert pts == [(10.0, 0.25), (20.0, 0.5), (30.0, 0.75)]
    assert cdf_points([5.0, 5.0]) == [(5.0, 0.5), (5.0, 1.0)]


# ---- the SVG and the table -----------------------------------------------------------


def test_the_cdf_plot_is_well_formed_svg_with_one_line_per_range_and_timeouts_in_the_legend():
    svg = render_cdf_svg([("150-300", [95.0, 180.0, 600.0]), ("150-150", [None, 12000.0]), ("12-24", [None])],
                         "a <title> & more")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    lines = root.findall(f"{ns}polyline")
    assert len(lines) == 2  # a range without any elected trial has a legend entry but no line
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "a <title> & more" in texts
    assert "150-150 ms (n=2, 1 timeouts)" in texts
    assert "12-24 ms (n=1, 1 timeouts)" in texts
    assert "150-300 ms (n=3)" in texts
    # the log axis spans the data: 10 ms .. 100 s here, with labels at 1-2-5 steps
    assert "10" in texts and "100" in texts and "10s" in texts


def test_the_cdf_plot_of_no_data_still_renders():
    ET.fromstring(render_cdf_svg([], "empty"))
    ET.fromstring(render_cdf_svg([("150-300", [])], "no trials"))


def test_every_step_of_the_cdf_is_drawn_up_to_its_share():
    svg = render_cdf_svg([("r", [100.0, 1000.0])], "t")
    root = ET.fromstring(svg)
    points = root.find("{http://www.w3.org/2000/svg}polyline").get("points").split()
    ys = [float(p.split(",")[1]) for p in points]
    # starts at 0 %, ends at 100 %: the top of the plot area (y = 40)
    assert ys[0] == pytest.approx(40 + 330) and ys[-1] == pytest.approx(40)


def test_the_legend_fits_inside_the_picture():
    root = ET.fromstring(render_cdf_svg([("150-300", [None] * 5 + [1.0] * 995)], "t"))
    ns = "{http://www.w3.org/2000/svg}"
    legend = next(t for t in root.iter(f"{ns}text") if "timeouts" in (t.text or ""))
    # ~7 px per character at 12 px sans-serif
    assert float(legend.get("x")) + 7 * len(legend.text) <= float(root.get("width"))


def test_the_table_sets_the_papers_numbers_beside_ours_and_shows_timeouts():
    rows = [(TimeoutRange(150, 155), 75, summarize([250.0, 290.0, 310.0])),
            (TimeoutRange(150, 150), 75, summarize([None, None])),
            (TimeoutRange(25, 50), 12, summarize([40.0, 12500.0]))]
    table = format_table(rows, cap_s=15)
    lines = table.splitlines()
    assert lines[0].split()[:10] == ["range", "ms", "hb", "min", "median", "mean", "p90", "p99", "max", "trials"]
    row155 = next(line for line in lines if line.startswith("150-155"))
    assert row155.split()[:4] == ["150-155", "75", "250", "290"]
    assert PAPER["150-155"] in row155
    row150 = next(line for line in lines if line.startswith("150-150 "))
    assert row150.split()[2:8] == ["-"] * 6 and row150.split()[8:10] == ["2", "2"]
    assert "> 10 s (split votes)" in row150
    assert "12.50s" in next(line for line in lines if line.startswith("25-50"))
    assert "within 15 s" in lines[-1]


# ---- arguments -------------------------------------------------------------------


@pytest.mark.parametrize("argv, says", [
    (["--ranges", "150-x"], "--ranges"),
    (["--ranges", "300-150"], "--ranges"),
    (["--nodes", "2"], "--nodes"),
    (["--trials", "0"], "--trials"),
    (["--cap", "0"], "--cap"),
    (["--ranges", "150-300", "--heartbeat", "150"], "--heartbeat"),
    (["--ranges", "12-24", "--tick", "10"], "--tick"),
    (["--poll-ms", "0"], "--poll-ms"),
    (["--target", "nosuch"], "--target"),
    (["--max-timeouts", "0"], "--max-timeouts"),
    (["--range-time-limit", "-1"], "--range-time-limit"),
    (["--option", "sync_limit"], "KEY=VALUE"),
    (["--option", "heartbeat=1", "--option", "heartbeat=2"], "given twice"),
    # A target with no election timeout is measured with its own timing, set through --option.
    (["--target", "zookeeper", "--ranges", "150-300"], "--ranges own"),
    (["--target", "zookeeper", "--option", "sync_limit=0"], "--option"),
    (["--target", "zookeeper", "--option", "election_timeout=150-300"], "no option 'election_timeout'"),
    # The target judges its own timing: etcd needs E >= 5 heartbeats and randomizes over [E, 2E) only.
    (["--target", "etcd", "--ranges", "150-300"], "5 heartbeats"),
    (["--target", "etcd", "--ranges", "150-151", "--heartbeat", "30"], "[E, 2E)"),
])
def test_bad_arguments_are_one_line_and_exit_2(argv, says, capsys, tmp_path):
    code = main(["bench", "election", "--store", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and says in err and "Traceback" not in err
    assert not (tmp_path / "bench-election").exists()


def test_bench_without_a_mode_says_which_one(capsys):
    assert main(["bench"]) == 2
    assert "bench election" in capsys.readouterr().err


def test_the_help_teaches_the_method_and_the_papers_numbers(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "election", "--help"])
    out = capsys.readouterr().out
    for words in ("Figure 16", "uniform in [0, heartbeat)", "SIGKILL", "--poll-ms", "timeout", "median 287 ms",
                  "results.json", "cdf-<range>.svg", "examples:"):
        assert words in out


# ---- the measuring loop against a fake cluster -------------------------------------------


class FakeCluster:
    """Five nodes whose leader is replaced `elect_after` seconds after it is killed (never if None);
    a restarted node rejoins as a follower (or, with elect_after None, as the new leader)."""

    def __init__(self, elect_after: float | None, nodes: int = 5):
        self.node_ids = [f"n{i}" for i in range(1, nodes + 1)]
        self.elect_after = elect_after
        self.term, self.leader = 1, "n1"
        self.down: set[str] = set()
        self.elect_at: float | None = None
        self.kills: list[str] = []
        self.up_calls = self.teardowns = 0

    async def probe(self, node, timeout):
        if node in self.down:
            return None
        if self.elect_at is not None and time.monotonic() >= self.elect_at:
            self.term += 1
            self.leader = next(n for n in self.node_ids if n not in self.down)
            self.elect_at = None
        return {"id": node, "role": "leader" if node == self.leader else "follower", "term": self.term,
                "leader": self.leader, "commit_index": self.term}

    def kill(self, node):
        at = time.monotonic()
        self.kills.append(node)
        self.down.add(node)
        if node == self.leader:
            self.leader = None
            if self.elect_after is not None:
                self.elect_at = at + self.elect_after
        return at

    def start(self, node):
        self.down.discard(node)
        if self.leader is None and self.elect_after is None:
            self.term += 1
            self.leader = node

    def lost(self, nodes):
        return []

    # the handle side
    def up(self):
        self.up_calls += 1

    def teardown(self):
        self.teardowns += 1


def _settings(**kw) -> BenchSettings:
    return BenchSettings(**{"trials": 3, "cap_s": 2.0, "poll_ms": 2.0, "settle_timeout_s": 2.0, **kw})


def test_downtime_runs_from_the_kill_to_the_first_survivor_leading_in_a_higher_term():
    import random

    fake = FakeCluster(elect_after=0.08)
    bench = ElectionBench(fake, heartbeat_ms=10, settle_ms=10, rng=random.Random(1), settings=_settings())
    trials = asyncio.run(bench.run_trials(3))
    assert [t.index for t in trials] == [1, 2, 3]
    assert fake.kills == [t.old_leader for t in trials]
    for t in trials:
        assert 80 <= t.downtime_ms <= 80 + 200, t  # one poll late at best; a loaded host adds more
        assert t.acknowledged_ms >= t.downtime_ms
        assert t.new_term == t.old_term + 1 and t.new_leader != t.old_leader
        assert 0 <= t.kill_offset_ms < 10
    assert fake.down == set()  # every killed node was started again


def test_no_new_leader_within_the_cap_is_a_timeout_and_the_range_stops_after_max_timeouts():
    import random

    fake = FakeCluster(elect_after=None)
    bench = ElectionBench(fake, heartbeat_ms=10, settle_ms=10, rng=random.Random(1),
                          settings=_settings(cap_s=0.15, max_timeouts=2))
    trials = asyncio.run(bench.run_trials(5))
    assert len(trials) == 2
    assert all(t.downtime_ms is None and t.new_leader is None for t in trials)


def test_a_cluster_that_never_settles_on_a_leader_is_a_stability_error():
    import random

    fake = FakeCluster(elect_after=0.01)
    fake.leader = None
    bench = ElectionBench(fake, heartbeat_ms=10, settle_ms=10, rng=random.Random(1),
                          settings=_settings(settle_timeout_s=0.2))
    with pytest.raises(StabilityError, match="no stable leader"):
        asyncio.run(bench.run_trials(1))


def test_a_whole_bench_writes_its_folder_prints_the_table_and_tears_every_cluster_down(tmp_path: Path):
    import io

    made: list[FakeCluster] = []

    def make(r):
        if r.label == "25-50":
            class Broken(FakeCluster):
                def up(self):
                    super().up()
                    raise ClusterError("nodes n1 did not answer")
            fake = Broken(0.03)
        else:
            fake = FakeCluster(0.03)
        made.append(fake)
        return fake, fake

    plan = BenchPlan("raftkv", 5, (TimeoutRange(150, 300), TimeoutRange(25, 50), TimeoutRange(12, 24)), 7, 1, None,
                     _settings(trials=2))
    out = io.StringIO()
    code = run_election(plan, tmp_path, quiet=True, out=out, make_cluster=make)
    assert code == 0
    # the broken range tried three fresh clusters; every cluster was torn down, the broken ones too
    assert [f.teardowns for f in made] == [1, 1, 1, 1, 1]
    folder = (tmp_path / "bench-election" / "latest").resolve()
    results = json.loads((folder / "results.json").read_text())
    assert results["status"] == "complete" and results["seed"] == 7 and results["nodes"] == 5
    by_range = {r["range"]: r for r in results["ranges"]}
    assert len(by_range["150-300"]["trials"]) == 2 and by_range["150-300"]["heartbeat_ms"] == 75
    assert by_range["25-50"]["error"] == "nodes n1 did not answer"
    assert by_range["25-50"]["cluster_failures"] == ["nodes n1 did not answer"] * 3
    assert "--seed 7" in results["command"]
    for name in ("table.txt", "cdf-150-300.svg", "cdf-25-50.svg", "cdf-12-24.svg", "cdf-all.svg",
                 "fig16-top.svg", "fig16-bottom.svg"):
        assert (folder / name).exists(), name
    printed = out.getvalue()
    assert printed.startswith("range ms")
    assert "range 25-50: stopped early: nodes n1 did not answer" in printed
    assert (folder / "table.txt").read_text().startswith(printed.splitlines()[0])


def test_a_cluster_removed_under_the_bench_is_replaced_and_its_bogus_timeout_discarded(tmp_path: Path):
    import io

    made: list[FakeCluster] = []

    def make(r):
        class Vanishing(FakeCluster):
            def kill(self, node):
                at = super().kill(node)
                if len(made) == 1 and len(self.kills) == 2:
                    self.elect_at = None  # someone removed every container: nobody answers, nobody elects
                    self.down = set(self.node_ids)
                return at

            def lost(self, nodes):
                return [n for n in nodes if n in self.down]

        fake = Vanishing(0.02)
        made.append(fake)
        return fake, fake

    plan = BenchPlan("raftkv", 5, (TimeoutRange(150, 300),), 7, 1, None, _settings(trials=4, cap_s=0.2))
    assert run_election(plan, tmp_path, quiet=True, out=io.StringIO(), make_cluster=make) == 0
    results = json.loads(((tmp_path / "bench-election" / "latest") / "results.json").read_text())
    (r,) = results["ranges"]
    assert [t["index"] for t in r["trials"]] == [1, 2, 3, 4]
    assert all(t["downtime_ms"] is not None for t in r["trials"])
    assert r["error"] is None and len(r["cluster_failures"]) == 1 and "no longer running" in r["cluster_failures"][0]
    assert [f.teardowns for f in made] == [1, 1]


def test_an_interrupted_bench_tears_down_and_keeps_what_it_measured(tmp_path: Path):
    import io

    made: list[FakeCluster] = []

    def make(r):
        class Interrupted(FakeCluster):
            def start(self, node):
                super().start(node)
                if len(self.kills) == 2:
                    raise KeyboardInterrupt

        fake = Interrupted(0.02)
        made.append(fake)
        return fake, fake

    plan = BenchPlan("raftkv", 5, (TimeoutRange(150, 300), TimeoutRange(12, 24)), 7, 1, None, _settings(trials=5))
    code = run_election(plan, tmp_path, quiet=True, out=io.StringIO(), make_cluster=make)
    assert code == 2
    assert len(made) == 1 and made[0].teardowns == 1
    results = json.loads(((tmp_path / "bench-election" / "latest") / "results.json").read_text())
    assert results["status"] == "interrupted"
    assert len(results["ranges"][0]["trials"]) == 2


def test_results_json_reads_back_into_the_same_ranges(tmp_path: Path):
    import io

    from harness.election_bench import results_from_json

    def make(r):
        fake = FakeCluster(0.02)
        return fake, fake

    plan = BenchPlan("raftkv", 5, (TimeoutRange(150, 300),), 7, 1, None, _settings(trials=2))
    run_election(plan, tmp_path, quiet=True, out=io.StringIO(), make_cluster=make)
    doc = json.loads(((tmp_path / "bench-election" / "latest") / "results.json").read_text())
    (back,) = results_from_json(doc)
    assert back.as_dict() == doc["ranges"][0]


def test_the_target_gets_the_range_heartbeat_and_tick_as_settings():
    plan = BenchPlan("raftkv", 5, (TimeoutRange(150, 300),), 1, 1, None, BenchSettings())
    assert plan.target_settings(TimeoutRange(150, 300)) == {"election_timeout": "150-300", "heartbeat": 75, "tick": 1}
    plan = BenchPlan("raftkv", 5, (TimeoutRange(150, 300),), 1, None, 20, BenchSettings())
    assert plan.target_settings(TimeoutRange(150, 300)) == {"election_timeout": "150-300", "heartbeat": 20}


def test_raftkv_starts_its_nodes_with_those_settings():
    from targets.base import ClusterLayout, NodeAddress, TargetOptions
    from targets.raftkv.plugin import RaftKV

    layout = ClusterLayout(nodes=(NodeAddress("n1", "10.0.0.11"),), peer_port=7000, client_port=8000)
    cmd = RaftKV().node_command("n1", layout, TargetOptions(settings={"election_timeout": "12-24", "heartbeat": 6,
                                                                       "tick": 1}))
    joined = " ".join(cmd)
    assert "--election-timeout 12-24" in joined and "--heartbeat 6" in joined and "--tick 1" in joined


def test_a_target_without_an_election_timeout_is_measured_with_its_own_timing_and_the_options_given():
    import argparse

    from harness.commands.bench import add_arguments, plan_from_args

    p = argparse.ArgumentParser()
    add_arguments(p)
    plan = plan_from_args(p.parse_args(["election", "--target", "zookeeper", "--option", "sync_limit=5",
                                        "--option", "tick_time=100", "--trials", "2"]))
    (own,) = plan.ranges
    assert own.own and own.label == "own" and plan.heartbeat_for(own) == 100 and own.settle_ms() == 1000
    assert plan.target_settings(own) == {"sync_limit": 5, "tick_time": 100}  # numbers, as YAML reads them
    raft = plan_from_args(p.parse_args(["election", "--ranges", "150-300,own", "--option", "tick=2"]))
    assert raft.target_settings(raft.ranges[0]) == {"election_timeout": "150-300", "heartbeat": 75, "tick": 2}
    assert raft.target_settings(raft.ranges[1]) == {"tick": 2}
    assert parse_ranges("own,12-24")[0].own and parse_ranges("own,12-24")[1] == TimeoutRange(12, 24)
    with pytest.raises(RangeError, match="twice"):
        parse_ranges("own,own")


def test_an_own_timing_bench_writes_its_table_and_reads_back(tmp_path: Path):
    import io

    from harness.election_bench import OWN_TIMING, results_from_json

    def make(r):
        fake = FakeCluster(0.02)
        return fake, fake

    plan = BenchPlan("zookeeper", 5, (OWN_TIMING,), 3, None, None, _settings(trials=2), (("sync_limit", 5),))
    out = io.StringIO()
    assert run_election(plan, tmp_path, quiet=True, out=out, make_cluster=make) == 0
    folder = (tmp_path / "bench-election" / "latest").resolve()
    doc = json.loads((folder / "results.json").read_text())
    assert doc["options"] == {"sync_limit": 5} and "--option sync_limit=5" in doc["command"]
    assert "--ranges own" in doc["command"]
    (back,) = results_from_json(doc)
    assert back.range.own and back.as_dict() == doc["ranges"][0]
    assert (folder / "cdf-own.svg").exists() and not (folder / "fig16-bottom.svg").exists()
    assert any(line.startswith("own ") for line in out.getvalue().splitlines())


# ---- --compare: targets side by side -----------------------------------------------------------


def _compare_args(*argv: str):
    import argparse

    from harness.commands.bench import add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(["election", *argv])


def test_compared_raft_targets_share_one_range_and_heartbeat_and_the_others_keep_their_own_timing():
    from harness.commands.bench import compare_plans_from_args

    entries = compare_plans_from_args(_compare_args("--compare", "raftkv,etcd,zookeeper", "--trials", "3",
                                                    "--option", "zookeeper:tick_time=100"))
    assert [name for name, _, _ in entries] == ["raftkv", "etcd", "zookeeper"]
    by = {name: (plan, timing) for name, plan, timing in entries}
    for raft in ("raftkv", "etcd"):
        plan, timing = by[raft]
        (r,) = plan.ranges
        # 30 ms: a fifth of 150, the finest heartbeat etcd accepts for a 150 ms election timeout
        assert r.label == "150-300" and plan.heartbeat_for(r) == 30 and timing.startswith("election timeout 150-300")
        assert plan.options == ()
    zk, timing = by["zookeeper"]
    assert zk.ranges[0].own and zk.target_settings(zk.ranges[0]) == {"tick_time": 100}
    assert timing == "own timing (tick_time=100)"
    assert len({plan.seed for plan, _ in by.values()}) == 1  # one seed drawn for all
    assert all(plan.settings.throughput_s == 1.0 for plan, _ in by.values())  # on by default when comparing


@pytest.mark.parametrize("argv, says", [
    (["--compare", "raftkv"], "two or more targets"),
    (["--compare", "raftkv,raftkv"], "named twice"),
    (["--compare", "raftkv,etcd", "--target", "raftkv"], "--target and --compare"),
    (["--compare", "raftkv,nosuch"], "--compare: unknown target"),
    (["--compare", "raftkv,etcd", "--ranges", "150-300,12-24"], "one election-timeout range"),
    (["--compare", "raftkv,etcd", "--heartbeat", "40"], "(etcd)"),
    (["--compare", "raftkv,zookeeper", "--option", "zk:tick_time=1"], "not one of the --compare targets"),
    (["--compare", "raftkv,zookeeper", "--option", "zookeeper:bogus=1"], "no option 'bogus'"),
    (["--compare", "raftkv,etcd", "--throughput-s", "-1"], "--throughput-s"),
])
def test_bad_compare_arguments_are_one_line_and_exit_2(argv, says, capsys, tmp_path):
    code = main(["bench", "election", "--store", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and says in err and "Traceback" not in err
    assert not (tmp_path / "bench-election").exists()


class CountingCluster(FakeCluster):
    """A fake whose survivors count 7 messages and 2 fsyncs per election and that writes at a fixed rate
    (lower while the killed node is down)."""

    def __init__(self, elect_after, **kw):
        super().__init__(elect_after, **kw)
        self.sent = {n: 0 for n in self.node_ids}

    def kill(self, node):
        at = super().kill(node)
        survivors = [n for n in self.node_ids if n not in self.down]
        for i in range(7):
            self.sent[survivors[i % len(survivors)]] += 1
        return at

    async def write_rate(self, nodes, seconds):
        await asyncio.sleep(seconds)
        return 100.0 if len(nodes) == len(self.node_ids) else 60.0

    async def counters(self, node, timeout):
        return {"messages": self.sent[node], "fsyncs": 2 * self.term if node in ("n2", "n3") else 0}


def test_each_trial_records_what_the_election_cost_and_the_write_rates_around_it():
    import random

    fake = CountingCluster(elect_after=0.05)
    bench = ElectionBench(fake, heartbeat_ms=10, settle_ms=10, rng=random.Random(1),
                          settings=_settings(throughput_s=0.01))
    trials = asyncio.run(bench.run_trials(2))
    for t in trials:
        assert t.messages == 7  # every survivor's, summed
        assert t.fsyncs in (2, 4)  # n2 and n3 each sync once per term; one of them may be the killed leader
        assert (t.writes_before_per_s, t.writes_after_per_s) == (100.0, 60.0)
    plain = ElectionBench(FakeCluster(0.05), heartbeat_ms=10, settle_ms=10, rng=random.Random(1), settings=_settings())
    (t,) = asyncio.run(plain.run_trials(1))
    assert (t.messages, t.fsyncs, t.writes_before_per_s, t.writes_after_per_s) == (None, None, None, None)


def test_a_counter_a_node_lost_or_did_not_report_is_left_out_not_guessed():
    from harness.election_bench import counter_delta

    before = {"n1": {"messages": 5, "fsyncs": 3}, "n2": {"messages": 1, "fsyncs": 9}}
    assert counter_delta(before, {"n1": {"messages": 8, "fsyncs": 4}, "n2": {"messages": 2, "fsyncs": 9}}) == {
        "messages": 4, "fsyncs": 1}
    assert counter_delta(before, {"n1": {"messages": 8, "fsyncs": 4}, "n2": {"messages": 2, "fsyncs": 1}}) == {
        "messages": 4}  # n2's fsyncs went down: it restarted, so the delta means nothing
    assert counter_delta(before, {"n1": {"messages": 8}, "n2": None}) == {}
    assert counter_delta(None, before) == {}


def test_the_write_rate_counts_only_acknowledged_writes_and_closes_the_client():
    from harness.election_bench import closed_loop_write_rate

    class Client:
        def __init__(self):
            self.ops, self.closed = [], False

        async def invoke(self, node, op):
            self.ops.append((node, op))
            await asyncio.sleep(0.005)
            return {"type": "ok" if node == "n1" else "fail", "value": None, "error": None}

        async def close(self):
            self.closed = True

    c = Client()
    rate = asyncio.run(closed_loop_write_rate(c, ["n1", "n2"], 0.2, writers=2))
    assert c.closed and {n for n, _ in c.ops} == {"n1", "n2"}
    assert all(op["f"] == "write" for _, op in c.ops)
    oks = sum(1 for n, _ in c.ops if n == "n1")
    assert 0 < rate <= oks / 0.2 + 1  # refusals do not count


def test_a_compare_writes_one_table_one_cdf_and_every_targets_trials(tmp_path: Path):
    import io
    import xml.etree.ElementTree as ET

    from harness.commands.bench import compare_plans_from_args, run_compare

    entries = compare_plans_from_args(_compare_args("--compare", "raftkv,zookeeper", "--trials", "2", "--cap", "2",
                                                    "--throughput-s", "0.01", "--seed", "5"))
    entries = [(n, replace_settings(p), t) for n, p, t in entries]
    made: dict[str, CountingCluster] = {}

    def factory(plan, folder, log):
        def make(r):
            made[plan.target] = CountingCluster(0.02 if plan.target == "raftkv" else 0.06)
            return made[plan.target], made[plan.target]
        return make

    out = io.StringIO()
    assert run_compare(entries, tmp_path, quiet=True, out=out, make_cluster_for=factory) == 0
    assert all(c.teardowns == 1 for c in made.values())
    folder = (tmp_path / "bench-election" / "latest").resolve()
    doc = json.loads((folder / "results.json").read_text())
    assert [t["target"] for t in doc["targets"]] == ["raftkv", "zookeeper"]
    assert doc["targets"][0]["timing"].startswith("election timeout 150-300 ms, heartbeat 30 ms")
    assert doc["targets"][1]["range"] == "own" and len(doc["targets"][1]["trials"]) == 2
    assert doc["targets"][0]["trials"][0]["messages"] == 7
    assert "--compare raftkv,zookeeper" in doc["command"] and "--seed 5" in doc["command"]
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:4] == ["target", "min", "median", "p99"]
    raft_row = next(line for line in lines if line.startswith("raftkv"))
    assert " 7 " in raft_row and "100" in raft_row and "60" in raft_row
    zk_row = next(line for line in lines if line.startswith("zookeeper"))
    assert zk_row.rstrip().endswith("own timing (its defaults)")
    svg = ET.fromstring((folder / "cdf-compare.svg").read_text())
    legend = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text") if t.text and "(n=" in t.text]
    assert legend == ["raftkv (n=2)", "zookeeper (n=2)"]


def replace_settings(plan):
    from dataclasses import replace

    return replace(plan, settings=replace(plan.settings, poll_ms=2.0, settle_timeout_s=2.0))
