"""`splitbrain bench election`: leader failover times per election-timeout range, like Figure 16 of the Raft paper."""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.election_bench import DEFAULT_RANGES, OWN, PAPER

NAME = "bench"
HELP = "measure the target: `bench election` times leader failover per election-timeout range (Raft paper Fig. 16)"
DESCRIPTION = """\
Benchmarks of a target. One mode so far:

  splitbrain bench election    leader failover time per election-timeout range

Run `splitbrain bench election --help` for what it does and its options.
"""

ELECTION_DESCRIPTION = """\
Reproduce Figure 16 of the Raft paper (Ongaro and Ousterhout, 2014, section 9.3)
against a target: how long is a cluster without a leader after its leader
crashes, and how does that depend on the election timeout range?

For each range the bench starts a fresh cluster (Docker, --nodes nodes) whose
nodes get the settings election_timeout "LO-HI" (ms), heartbeat (ms) and
tick (ms) (raftkv: --election-timeout, --heartbeat, --tick), then repeats:

  1. wait for a stable leader (all nodes agree on term and leader, commit
     indexes equal, held for one upper timeout);
  2. wait a random delay, uniform in [0, heartbeat): the leader's heartbeat
     timer is not visible from outside, so this places the kill at a random
     point of its heartbeat interval, as the paper did;
  3. SIGKILL the leader (by its host pid when Docker runs on this host, so
     the kill time is exact);
  4. poll the survivors' status probes every --poll-ms; the downtime ends at
     the first answer in which a survivor says it leads in a higher term
     (a majority acknowledging it is recorded too). No new leader within
     --cap seconds is a timeout: counted in the table, never hidden;
  5. restart the killed node; it catches up before the next trial.

The heartbeat is half the range's lower bound, as in the paper (--heartbeat
sets one for every range). raftkv ticks every 10 ms by default, which would
make 150-150, 150-151 and 150-155 the same timeout: the bench runs it with a
1 ms tick (--tick).

A target with no Raft election timeout (ZooKeeper; a failover manager such
as Redis Sentinel) has no ranges to sweep: --ranges own (its default there)
runs one cluster with the target's own failover timing, set with --option
(e.g. --option sync_limit=10 --option tick_time=100 for ZooKeeper). A leader
must have held for 1 s before it is killed, and the kills are spread over
100 ms (--heartbeat sets the spread). --option also adds a setting to every
range of a Raft target.

The paper's numbers (LogCabin, 5 servers, gigabit Ethernet, 1000 trials):
""" + "".join(f"  {k:8} {v}\n" for k, v in PAPER.items()) + f"""
Output: a table on stdout (min, median, mean, p90, p99, max in ms, trials,
timeouts, the paper's figure beside ours), progress on stderr (range, trial
i/N, last downtime), and STORE/bench-election/<timestamp>/ with
results.json (every trial), table.txt, cdf-<range>.svg per range,
cdf-all.svg (all ranges) and fig16-top.svg / fig16-bottom.svg (the paper's
two panels). Every container is removed at the end, on error, and on
Ctrl-C or SIGTERM.

default ranges: {DEFAULT_RANGES}

examples:
  splitbrain bench election                                     # all ten ranges, 50 trials each
  splitbrain bench election --ranges 150-300,12-24 --trials 20 --seed 7
  splitbrain bench election --nodes 3 --ranges 150-300 --trials 3   # a quick look
  splitbrain bench election --target zookeeper --trials 20         # ZooKeeper's own timing
  splitbrain bench election --target zookeeper --option sync_limit=5 --trials 20

exit codes: 0 done (timeouts are results, not failures), 2 usage or
infrastructure error or interrupted.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="mode", metavar="MODE")
    e = sub.add_parser("election", help="leader failover time per election-timeout range (Raft paper Fig. 16)",
                       description=ELECTION_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("--target", default="raftkv", metavar="NAME",
                   help="system under test (default raftkv), or package.module:Class for one that is not installed")
    e.add_argument("--nodes", type=int, default=5, help="cluster size, at least 3 (default 5, as in the paper)")
    e.add_argument("--ranges", default=None, metavar="LO-HI,...",
                   help="election timeout ranges in ms, comma-separated (default: the paper's ten), or own: the "
                        "target's own failover timing (the default for a target without an election timeout)")
    e.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a target setting for every range, as in a spec's options: (repeatable), e.g. "
                        "--option sync_limit=10 for ZooKeeper")
    e.add_argument("--trials", type=int, default=50, metavar="N", help="leader kills per range (default 50; the paper ran 1000)")
    e.add_argument("--seed", type=int, help="seed of the kill delays (default: random, recorded)")
    e.add_argument("--cap", type=float, default=15.0, metavar="S",
                   help="a trial with no new leader after S seconds is a timeout (default 15)")
    e.add_argument("--max-timeouts", type=int, default=5, metavar="K",
                   help="stop a range after K timeouts, reporting them (default 5)")
    e.add_argument("--range-time-limit", type=float, metavar="S",
                   help="start no new trial in a range after S seconds (fewer trials, said in the table's notes)")
    e.add_argument("--poll-ms", type=float, default=5.0, metavar="MS",
                   help="how often each survivor's status is asked while waiting (default 5)")
    e.add_argument("--heartbeat", type=int, metavar="MS",
                   help="heartbeat for every range (default: half of each range's lower bound, as in the paper)")
    e.add_argument("--tick", type=int, default=None, metavar="MS",
                   help="the target's timer tick, passed as setting 'tick' (default 1 where the target has "
                        "such a setting; 0 leaves the target's own)")
    e.add_argument("--store", default="store", metavar="DIR", help="where the bench folder goes (default ./store)")
    e.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    from harness.errors import UsageError

    if getattr(args, "mode", None) != "election":
        raise UsageError("which benchmark? `splitbrain bench election` (see `splitbrain bench election --help`)")
    plan = plan_from_args(args)
    return run_election(plan, Path(args.store), quiet=args.quiet)


def plan_from_args(args: argparse.Namespace):
    """The validated plan; UsageError (one line) for anything the user must fix."""
    from harness.election_bench import BenchPlan, BenchSettings, RangeError, parse_ranges
    from harness.errors import UsageError
    from targets.registry import PluginError, get_target

    try:
        target = get_target(args.target)  # unknown, or fails to import: say so before any cluster starts
    except PluginError as e:
        raise UsageError(f"--target: {e}") from None
    from targets.base import option_problems

    # A range any Raft target can run (etcd's are [E, 2E) with E >= 5 heartbeats): refused only by a
    # target with no election timeout at all.
    raft_problems = option_problems(target, {"election_timeout": "1000-2000", "heartbeat": 100})
    raft_timing = not raft_problems
    try:
        ranges = parse_ranges(args.ranges if args.ranges is not None else DEFAULT_RANGES if raft_timing else OWN)
    except RangeError as e:
        raise UsageError(str(e)) from None
    options = parse_options(args.option)
    if not raft_timing and any(not r.own for r in ranges):
        raise UsageError(f"--ranges: target {args.target} has no Raft election timeout to set "
                         f"({raft_problems[0].rstrip('.')}); --ranges own measures its own failover timing "
                         f"(set it with --option KEY=VALUE)")
    if args.nodes < 3:
        raise UsageError(f"--nodes must be at least 3 (a leader must be electable without the killed one), got {args.nodes}")
    if args.trials < 1:
        raise UsageError(f"--trials must be at least 1, got {args.trials}")
    if not 0 < args.cap <= 3600:
        raise UsageError(f"--cap must be in (0, 3600] seconds, got {args.cap:g}")
    if args.max_timeouts < 1:
        raise UsageError(f"--max-timeouts must be at least 1, got {args.max_timeouts}")
    if not 0.5 <= args.poll_ms <= 1000:
        raise UsageError(f"--poll-ms must be between 0.5 and 1000, got {args.poll_ms:g}")

    tick_ms = args.tick
    if tick_ms is None:
        # A fine tick keeps raftkv's timers close to the range; a target without a tick
        # setting (etcd's tick is its heartbeat) is not handed one it would refuse.
        tick_ms = 0 if option_problems(target, {"tick": 1}) else 1
    if tick_ms < 0:
        raise UsageError(f"--tick must be positive (or 0 for the target's own), got {tick_ms}")
    if args.range_time_limit is not None and args.range_time_limit <= 0:
        raise UsageError(f"--range-time-limit must be positive, got {args.range_time_limit:g}")
    tick = tick_ms or None
    for r in ranges:
        hb = args.heartbeat if args.heartbeat is not None else r.heartbeat()
        if r.own:
            if hb < 1:
                raise UsageError(f"--heartbeat {hb} ms (the spread of the kills) must be at least 1")
            continue
        if hb < 1 or hb >= r.lo:
            raise UsageError(f"--heartbeat {hb} ms must be at least 1 and below the lower bound of range {r.label}")
        if tick is not None and (tick > hb or tick > r.lo):
            raise UsageError(f"--tick {tick} ms is longer than the heartbeat ({hb} ms) of range {r.label}")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    settings = BenchSettings(trials=args.trials, cap_s=args.cap, poll_ms=args.poll_ms, max_timeouts=args.max_timeouts,
                             range_time_limit_s=args.range_time_limit)
    plan = BenchPlan(args.target, args.nodes, tuple(ranges), seed, tick, args.heartbeat, settings, options)
    # The target judges its own timing (etcd only randomizes over [E, 2E) and needs E >= 5
    # heartbeats): a range it cannot run is refused here, not when its cluster fails to come up.
    for r in ranges:
        problems = option_problems(target, plan.target_settings(r))
        if problems:
            raise UsageError(f"{'--option' if r.own else '--ranges ' + r.label}: {problems[0]}")
    return plan


def parse_options(items: list[str]) -> tuple[tuple[str, Any], ...]:
    """--option KEY=VALUE items -> ((key, value), ...), each value read as YAML reads a spec's options
    (10 is a number, true a boolean); UsageError naming a malformed or repeated item."""
    import yaml

    from harness.errors import UsageError
    from history.bounded import load_yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--option: expected KEY=VALUE (e.g. sync_limit=10), got {item!r}")
        if key in out:
            raise UsageError(f"--option: {key!r} is given twice")
        try:
            value = load_yaml(text) if text.strip() else ""  # bounded: aliases, nesting, integer size
        except yaml.YAMLError:
            value = text
        out[key] = value if isinstance(value, str | int | float | bool) else text
    return tuple(out.items())


def bench_folder(store: Path) -> Path:
    """A new STORE/bench-election/<UTC timestamp>/ (with logs/), and STORE/bench-election/latest pointing at it."""
    from harness.store import new_stamped_folder, point_latest

    root = store / "bench-election"
    path = new_stamped_folder(root)
    point_latest(root / "latest", path.name)
    return path


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def run_election(plan, store: Path, quiet: bool = False, out=None, make_cluster=None) -> int:
    """Run the plan, write the bench folder, print the table; the exit code."""
    from harness import election_bench as eb

    out = out or sys.stdout

    def log(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    folder = bench_folder(store)
    make_cluster = make_cluster or docker_cluster_factory(plan, folder, log)
    command = "splitbrain bench election " + " ".join(_reproduce_flags(plan))
    meta: dict[str, Any] = {"command": command, "target": plan.target, "nodes": plan.nodes, "seed": plan.seed,
                            "trials_per_range": plan.settings.trials, "cap_s": plan.settings.cap_s,
                            "poll_ms": plan.settings.poll_ms, "tick_ms": plan.tick_ms, "options": dict(plan.options),
                            "started": datetime.now(UTC).isoformat(), "load_average_start": _loadavg()}
    log(f"splitbrain bench election: {len(plan.ranges)} ranges x {plan.settings.trials} trials, {plan.nodes} nodes "
        f"of {plan.target}, seed {plan.seed} -> {folder}")

    def write(results, status: str) -> None:
        write_outputs(folder, results, {**meta, "status": status, "load_average_end": _loadavg()}, plan)

    results: list = []
    status, code = "complete", 0
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        eb.run_ranges(plan, make_cluster, lambda rs: write(rs, "running"), log, results=results)
    except KeyboardInterrupt:
        status, code = "interrupted", 2
        log("splitbrain bench election: interrupted; clusters torn down, partial results written")
    finally:
        signal.signal(signal.SIGTERM, old_term)
    write(results, status)
    table = eb.format_table([(r.range, r.heartbeat_ms, r.summary()) for r in results], plan.settings.cap_s)
    print(table, file=out)
    for r in results:
        if r.error:
            print(f"range {r.range.label}: stopped early: {r.error}", file=out)
        elif r.stopped_early:
            print(f"range {r.range.label}: {r.stopped_early}", file=out)
        if r.retries and not r.error:
            print(f"range {r.range.label}: {len(r.retries)} cluster(s) failed and were replaced "
                  f"(first: {r.retries[0][:200]})", file=out)
    print(f"bench folder: {folder}", file=out)
    if code == 0 and results and all(r.error for r in results):
        code = 2
    return code


def _reproduce_flags(plan) -> list[str]:
    flags = [f"--target {plan.target}", f"--nodes {plan.nodes}", f"--ranges {','.join(r.label for r in plan.ranges)}",
             f"--trials {plan.settings.trials}", f"--seed {plan.seed}", f"--cap {plan.settings.cap_s:g}",
             f"--max-timeouts {plan.settings.max_timeouts}", f"--poll-ms {plan.settings.poll_ms:g}",
             f"--tick {plan.tick_ms or 0}"]
    if plan.settings.range_time_limit_s is not None:
        flags.append(f"--range-time-limit {plan.settings.range_time_limit_s:g}")
    if plan.heartbeat_ms is not None:
        flags.append(f"--heartbeat {plan.heartbeat_ms}")
    flags += [f"--option {k}={v}" for k, v in plan.options]
    return flags


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def write_outputs(folder: Path, results: list, meta: dict[str, Any], plan) -> None:
    """results.json, table.txt, cdf-<range>.svg per range, cdf-all.svg and the paper's two panels."""
    from harness.election_bench import format_table, render_cdf_svg

    doc = {**meta, "ranges": [r.as_dict() for r in results]}
    tmp = folder / "results.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, folder / "results.json")
    (folder / "table.txt").write_text(
        format_table([(r.range, r.heartbeat_ms, r.summary()) for r in results], plan.settings.cap_s) + "\n"
        + f"\ncommand: {meta['command']}\nload average at start {meta.get('load_average_start')}, "
        f"at end {meta.get('load_average_end')}\n")
    where = f"{plan.nodes} x {plan.target}"
    for r in results:
        timing = "its own timing" if r.range.own else f"election timeout {r.range.label} ms"
        (folder / f"cdf-{r.range.label}.svg").write_text(
            render_cdf_svg([(r.range.label, r.downtimes)], f"{where}, {timing}: "
                                                            f"time without leader after the leader is killed"))
    measured = [r for r in results if r.trials]
    (folder / "cdf-all.svg").write_text(render_cdf_svg([(r.range.label, r.downtimes) for r in measured],
                                                       f"{where}: time without leader (all ranges)"))
    raft = [r for r in measured if not r.range.own]
    top = [r for r in raft if r.range.lo == 150]
    bottom = [r for r in raft if r.range.lo != 150 or r.range.label == "150-300"]
    if top:
        (folder / "fig16-top.svg").write_text(render_cdf_svg([(r.range.label, r.downtimes) for r in top],
                                                             f"{where}: lower bound 150 ms, more randomness"))
    if bottom:
        (folder / "fig16-bottom.svg").write_text(render_cdf_svg([(r.range.label, r.downtimes) for r in bottom],
                                                                f"{where}: shorter timeouts"))


class _DockerHandle:
    """A range's DockerCluster: up, and at teardown its node logs copied into the bench folder first."""

    def __init__(self, cluster, logs_dir: Path):
        self.cluster = cluster
        self.logs_dir = logs_dir

    def up(self) -> None:
        self.cluster.up(timeout=90)

    @property
    def image(self) -> str | None:
        """The node image: it is built from the working tree, so it says which code was measured."""
        return self.cluster.image

    def teardown(self) -> None:
        try:
            if self.cluster.layout is not None:
                self.cluster.copy_logs(self.logs_dir)
        except Exception as e:  # logs are a help; the teardown must happen
            print(f"splitbrain bench: node logs not copied: {e}", file=sys.stderr)
        finally:
            self.cluster.teardown()


def docker_cluster_factory(plan, folder: Path, log):
    """range -> (handle, bench cluster) of a Docker cluster of the plan's target with that range's settings."""
    from harness.cluster import DockerCluster
    from harness.election_bench import DockerBenchCluster
    from targets.base import TargetOptions
    from targets.registry import get_target

    target = get_target(plan.target)

    def make(r):
        run_id = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
        cluster = DockerCluster(run_id, target, plan.nodes, TargetOptions(settings=plan.target_settings(r)), log=log)
        return _DockerHandle(cluster, folder / "logs" / r.label), DockerBenchCluster(cluster)

    return make
