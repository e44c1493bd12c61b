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

--compare T1,T2,... answers the question across algorithms and systems: what
does a leader change cost in each, on this machine? The targets run one after
another, each on a fresh cluster with the same trials: the Raft targets one
range (--ranges, default 150-300) and one heartbeat (default a fifth of the
lower bound, the most etcd allows), the others their own timing (printed
beside their row: ZooKeeper's tick, Sentinel's down-after, Patroni's ttl
cannot be made equal; set them with --option TARGET:KEY=VALUE). Besides the
downtime, each trial measures acknowledged writes/s of 4 closed-loop writers
for --throughput-s seconds (default 1) before the kill and after the
election, and, where a target exports counters (raftkv: peer messages and
fsyncs; etcd: fsyncs), what the survivors sent and synced from the kill until
a majority named the new leader. One table, results.json and cdf-compare.svg
with a line per target.

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
  splitbrain bench election --compare raftkv,etcd,zookeeper,redis-sentinel,patroni --nodes 3 --trials 30 \
      --option redis-sentinel:down_after_ms=2000

exit codes: 0 done (timeouts are results, not failures), 2 usage or
infrastructure error or interrupted.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="mode", metavar="MODE")
    e = sub.add_parser("election", help="leader failover time per election-timeout range (Raft paper Fig. 16)",
                       description=ELECTION_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("--target", default=None, metavar="NAME",
                   help="system under test (default raftkv), or package.module:Class for one that is not installed")
    e.add_argument("--compare", default=None, metavar="T1,T2,...",
                   help="measure several targets one after another and print one table and one CDF with a line "
                        "per target (e.g. raftkv,etcd,zookeeper,redis-sentinel,patroni): Raft targets all get the "
                        "one range of --ranges (default 150-300) and the same heartbeat, the others their own "
                        "timing; --option T:KEY=VALUE sets one target's setting")
    e.add_argument("--throughput-s", type=float, default=None, metavar="S",
                   help="measure acknowledged writes/s for S seconds before each kill and after each election "
                        "(default 1 with --compare, else 0: off)")
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
    if args.compare is not None:
        return run_compare(compare_plans_from_args(args), Path(args.store), quiet=args.quiet)
    plan = plan_from_args(args)
    return run_election(plan, Path(args.store), quiet=args.quiet)


def _target(name: str, flag: str = "--target"):
    from harness.errors import UsageError
    from targets.registry import PluginError, get_target

    try:
        return get_target(name)  # unknown, or fails to import: say so before any cluster starts
    except PluginError as e:
        raise UsageError(f"{flag}: {e}") from None


def _raft_problems(target) -> list[str]:
    """Why the target has no Raft election timeout ([] if it has one). A range any Raft target can run
    (etcd's are [E, 2E) with E >= 5 heartbeats) is refused only by a target with no election timeout at all."""
    from targets.base import option_problems

    return option_problems(target, {"election_timeout": "1000-2000", "heartbeat": 100})


def plan_from_args(args: argparse.Namespace, target_name: str | None = None, options=None, ranges_text=None,
                   heartbeat: int | None = None):
    """The validated plan; UsageError (one line) for anything the user must fix. For --compare, the
    target, its options, its ranges and heartbeat are given by the caller."""
    from harness.election_bench import BenchPlan, BenchSettings, RangeError, parse_ranges
    from harness.errors import UsageError

    name = target_name or args.target or "raftkv"
    target = _target(name, "--compare" if target_name else "--target")
    from targets.base import option_problems

    raft_problems = _raft_problems(target)
    raft_timing = not raft_problems
    if ranges_text is None:
        ranges_text = args.ranges if args.ranges is not None else DEFAULT_RANGES if raft_timing else OWN
    try:
        ranges = parse_ranges(ranges_text)
    except RangeError as e:
        raise UsageError(str(e)) from None
    options = parse_options(args.option) if options is None else options
    if heartbeat is None:
        heartbeat = args.heartbeat
    if not raft_timing and any(not r.own for r in ranges):
        raise UsageError(f"--ranges: target {name} has no Raft election timeout to set "
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

    throughput_s = args.throughput_s if args.throughput_s is not None else (1.0 if args.compare else 0.0)
    if not 0 <= throughput_s <= 60:
        raise UsageError(f"--throughput-s must be between 0 and 60 seconds, got {throughput_s:g}")
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
        hb = heartbeat if heartbeat is not None else r.heartbeat()
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
                             range_time_limit_s=args.range_time_limit, throughput_s=throughput_s)
    plan = BenchPlan(name, args.nodes, tuple(ranges), seed, tick, heartbeat, settings, options)
    # The target judges its own timing (etcd only randomizes over [E, 2E) and needs E >= 5
    # heartbeats): a range it cannot run is refused here, not when its cluster fails to come up.
    for r in ranges:
        problems = option_problems(target, plan.target_settings(r))
        if problems:
            where = "--option" if r.own else "--ranges " + r.label
            raise UsageError(f"{where}: {problems[0]}" if not target_name else f"{where} ({name}): {problems[0]}")
    return plan


COMPARE_RANGE = "150-300"  # the paper's recommended range, which every Raft target here can run


def compare_plans_from_args(args: argparse.Namespace) -> list[tuple[str, Any, str]]:
    """(target, plan, its timing as printed) per --compare target, in the order given; UsageError for
    anything the user must fix, before any cluster starts."""
    from harness.election_bench import RangeError, parse_ranges
    from harness.errors import UsageError

    names = [n.strip() for n in args.compare.split(",")]
    if not all(names) or len(names) < 2:
        raise UsageError(f"--compare: expected two or more targets, comma-separated (e.g. raftkv,etcd), "
                         f"got {args.compare!r}")
    if len(set(names)) != len(names):
        raise UsageError(f"--compare: a target is named twice in {args.compare!r}")
    if args.target is not None:
        raise UsageError("--target and --compare together: --compare names every target to measure")
    try:
        ranges = parse_ranges(args.ranges or COMPARE_RANGE)
    except RangeError as e:
        raise UsageError(str(e)) from None
    if len(ranges) != 1 or ranges[0].own:
        raise UsageError(f"--ranges with --compare: one election-timeout range for the Raft targets "
                         f"(e.g. 150-300), got {args.ranges!r}")
    raft_range = ranges[0]
    args = argparse.Namespace(**vars(args))  # one seed for every target, drawn here if not given
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 31)
    # The same heartbeat for every Raft target: a fifth of the lower bound, the most etcd allows
    # (it refuses an election timeout under 5 heartbeats).
    heartbeat = args.heartbeat if args.heartbeat is not None else max(1, raft_range.lo // 5)
    shared, per_target = _split_options(args.option, names)
    out = []
    for name in names:
        target = _target(name, "--compare")
        options = tuple({**dict(shared), **dict(per_target.get(name, ()))}.items())
        raft = not _raft_problems(target)
        plan = plan_from_args(args, target_name=name, options=options,
                              ranges_text=raft_range.label if raft else OWN, heartbeat=heartbeat if raft else None)
        given = ", ".join(f"{k}={v}" for k, v in options)
        if raft:
            timing = f"election timeout {raft_range.label} ms, heartbeat {heartbeat} ms" + (f", {given}" if given else "")
        else:
            timing = f"own timing ({given or 'its defaults'})"
        out.append((name, plan, timing))
    return out


def _split_options(items: list[str], names: list[str]):
    """--option KEY=VALUE (every target) and --option TARGET:KEY=VALUE (that one) -> (shared, {target: options})."""
    from harness.errors import UsageError

    shared_items: list[str] = []
    per: dict[str, list[str]] = {}
    for item in items:
        head, sep, rest = item.partition(":")
        if sep and "=" not in head:
            if head not in names:
                raise UsageError(f"--option {item!r}: {head!r} is not one of the --compare targets ({', '.join(names)})")
            per.setdefault(head, []).append(rest)
        else:
            shared_items.append(item)
    return parse_options(shared_items), {k: parse_options(v) for k, v in per.items()}


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


def run_compare(entries: list[tuple[str, Any, str]], store: Path, quiet: bool = False, out=None,
                make_cluster_for=None) -> int:
    """Run each target's plan in turn (a fresh cluster each), write one bench folder with a table and a
    CDF of every target, print the table; the exit code. make_cluster_for(plan, folder, log) -> the
    plan's cluster factory (Docker's by default)."""
    from harness import election_bench as eb
    from harness.election_compare import CompareRow, compare_doc, format_compare_table

    out = out or sys.stdout

    def log(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    folder = bench_folder(store)
    first = entries[0][1]
    cap_s, throughput_s = first.settings.cap_s, first.settings.throughput_s
    flags = [f for f in _reproduce_flags(first) if not f.startswith(("--target", "--ranges", "--heartbeat", "--option",
                                                                      "--tick"))]
    raft = next((p for _, p, _ in entries if not p.ranges[0].own), None)
    if raft is not None:
        flags += [f"--ranges {raft.ranges[0].label}", f"--heartbeat {raft.heartbeat_ms}"]
    flags += [f"--option {name}:{k}={v}" for name, p, _ in entries for k, v in p.options]
    command = (f"splitbrain bench election --compare {','.join(n for n, _, _ in entries)} " + " ".join(flags)
               + f" --throughput-s {throughput_s:g}")
    meta: dict[str, Any] = {"command": command, "nodes": first.nodes, "seed": first.seed,
                            "trials_per_target": first.settings.trials, "cap_s": cap_s, "throughput_s": throughput_s,
                            "started": datetime.now(UTC).isoformat(), "load_average_start": _loadavg()}
    log(f"splitbrain bench election --compare: {len(entries)} targets x {first.settings.trials} trials, "
        f"{first.nodes} nodes each, seed {first.seed} -> {folder}")
    rows: list[CompareRow] = []

    def write(status: str) -> None:
        doc = {**meta, "status": status, "load_average_end": _loadavg(), "targets": compare_doc(rows)}
        tmp = folder / "results.json.tmp"
        tmp.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
        os.replace(tmp, folder / "results.json")
        (folder / "table.txt").write_text(format_compare_table(rows, cap_s, throughput_s) + "\n"
                                          + f"\ncommand: {command}\nload average at start {meta['load_average_start']}, "
                                          f"at end {doc['load_average_end']}\n")
        measured = [r for r in rows if r.result.trials]
        (folder / "cdf-compare.svg").write_text(eb.render_cdf_svg(
            [(r.target, r.result.downtimes) for r in measured],
            f"{first.nodes} nodes each: time without a leader after the leader is killed", ranges=False))

    status, code = "complete", 0
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        for name, plan, timing in entries:
            log(f"== {name}: {timing}")
            results: list = []
            make = (make_cluster_for or docker_cluster_factory)(plan, folder / name, log)
            try:
                eb.run_ranges(plan, make, lambda rs: None, log, results=results)
            finally:
                if results:
                    rows.append(CompareRow(name, timing, results[0]))
                    write("running")
    except KeyboardInterrupt:
        status, code = "interrupted", 2
        log("splitbrain bench election: interrupted; clusters torn down, partial results written")
    finally:
        signal.signal(signal.SIGTERM, old_term)
    write(status)
    print(format_compare_table(rows, cap_s, throughput_s), file=out)
    print(f"bench folder: {folder}", file=out)
    if code == 0 and rows and all(r.result.error for r in rows):
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
