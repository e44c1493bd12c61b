"""`splitbrain run`: one chaos test from flags or a YAML spec, from cluster up to verdict and exit code."""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from harness.spec import (
    FAULTS,
    WORKLOADS,
    SpecError,
    TestSpec,
    build_spec,
    check_spec,
    election_target,
    load_spec_file,
    schedule_argument,
)

NAME = "run"
HELP = "run one chaos test: cluster up, workload + faults, heal, check, verdict"
DESCRIPTION = f"""\
Run one chaos test end to end: start a cluster of the target in Docker, drive
a concurrent client workload against it while a seeded schedule injects
faults, heal, check that the cluster serves again, read everything back,
tear the cluster down and check the recorded history.

Everything lands in STORE/<test>/<timestamp>/ (history.jsonl, spec.yaml,
results.json, logs/), and STORE/latest points at it. spec.yaml is the fully
resolved spec, seed included: `splitbrain run --spec STORE/latest/spec.yaml`
repeats the run.

workloads: {', '.join(WORKLOADS.names())}
faults:    {', '.join(FAULTS)} (a host without netem refuses delay/duplicate/reorder)

examples:
  splitbrain run --target raftkv --nodes 5 --workload register \\
      --nemesis partition,kill,pause,clock --time-limit 60 --concurrency 10 --rate 200 --seed 42
  splitbrain run --nodes 3 --nemesis partition --bug stale-read --time-limit 30
  splitbrain run --spec nightly.yaml --seed 7                 # flags override the file
  splitbrain run --spec store/latest/spec.yaml                # repeat the last run
  splitbrain run --workload set --nemesis kill --bug ack-before-replicate
  splitbrain run --nemesis vote-crash --nemesis-interval 6 --bug no-persist-vote

A spec file holds the same settings as the flags (dashes or underscores):
  target: raftkv
  nodes: 5
  workload: register
  nemesis: [partition, kill]
  time-limit: 60
  seed: 42
  options: {{lease_reads: true}}   # passed to the target

Clients: --concurrency processes share --rate; by default one client is pinned
to each node (so a deposed or isolated leader keeps being asked) and the rest
follow the leader the observer sees (--routing). A timeout is recorded as
info and the client carries on as a new process.

exit codes: 0 valid, 1 anomaly found, 2 usage or infrastructure error, 3 unknown.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", metavar="FILE", help="YAML test spec; flags given here override its settings")
    p.add_argument("--target", metavar="NAME",
                   help=f"system under test: {installed_targets()} (default raftkv), "
                        "or package.module:Class for one that is not installed")
    p.add_argument("--nodes", type=int, help="cluster size (default 5)")
    p.add_argument("--workload", help=f"{' | '.join(WORKLOADS.names())} (default register)")
    p.add_argument("--nemesis", metavar="FAULTS", help="comma-separated faults to mix, or none (default partition)")
    p.add_argument("--time-limit", type=float, metavar="S", help="seconds of faults (default 60)")
    p.add_argument("--concurrency", type=int, metavar="N", help="client processes (default 10)")
    p.add_argument("--rate", type=float, metavar="OPS", help="target client ops per second overall (default 200)")
    p.add_argument("--seed", type=int, help="seed of the fault schedule and the workload (default: random, recorded)")
    p.add_argument("--bug", action="append", metavar="NAME", dest="bugs",
                   help="start the target with a deliberate bug (repeatable)")
    p.add_argument("--checker", action="append", metavar="NAME", dest="checkers",
                   help="also run this checker (a plugin name or package.module:Class; repeatable)")
    p.add_argument("--nemesis-interval", type=float, metavar="S", help="seconds between fault operations (default 5)")
    p.add_argument("--schedule", metavar="random|guided|FILE",
                   help="how faults are planned: random (default: seeded, fixed before the run), guided (each "
                        "next fault chosen from the cluster states the run has seen, favouring faults that led "
                        "to new ones), or a YAML list of entries to play as given (a run folder's schedule.yaml)")
    p.add_argument("--store", metavar="DIR", help="where run folders go (default ./store)")
    p.add_argument("--test", metavar="NAME", help="test name for the run folder (default from target, workload, faults)")
    p.add_argument("--warmup", type=float, metavar="S", help="seconds of ops before the first fault (default 3)")
    p.add_argument("--recovery-limit", type=float, metavar="S",
                   help="the healed cluster must serve again within this many seconds (default 15)")
    p.add_argument("--op-timeout", type=float, metavar="S", help="client timeout; a timeout is recorded as info (default 1)")
    p.add_argument("--ops-per-key", type=int, metavar="N", help="register: operations before a key is retired (default 200)")
    p.add_argument("--routing", choices=("mixed", "leader", "pinned"),
                   help="which node a client asks: mixed (default: one client pinned to each node, the rest "
                        "follow the leader), leader, or pinned")
    p.add_argument("--recipe", metavar="NAME",
                   help="election: the candidates' recipe (raftkv-lease, etcd-lock, zk-lock, ...); it picks the target")
    p.add_argument("--fencing", metavar="on|off", help="election: does the shared resource check fencing tokens "
                                                        "(default off, as most applications are written)")
    p.add_argument("--candidates", type=int, metavar="N", help="election: candidate processes, one container each "
                                                                "(default 3)")
    p.add_argument("--ttl", type=float, metavar="S", help="election: lease TTL / session timeout (default 2)")
    p.add_argument("--nemesis-on", metavar="candidates|service",
                   help="election: whose nodes the nemesis faults: the candidates (default; `leader` is the holder) "
                        "or the coordination service's (`leader` is its leader, e.g. the Redis primary)")
    p.add_argument("--docker-hosts", metavar="A,B,...",
                   help="place the nodes round-robin on these Docker engines: context names (docker context ls), "
                        "URLs (unix:///run/docker2.sock, ssh://user@host) or default; docs/multi-host.md says what "
                        "each host needs (default: every node on the environment's engine)")
    p.add_argument("--quiet", action="store_true", help="no live progress line")


def installed_targets() -> str:
    """The target names a run may use, for --help (listed without importing any)."""
    from targets.registry import target_names

    return ", ".join(target_names())


_OVERRIDES = ("target", "nodes", "workload", "nemesis", "time_limit", "concurrency", "rate", "seed", "bugs",
              "nemesis_interval", "store", "test", "warmup", "recovery_limit", "op_timeout", "ops_per_key", "routing",
              "checkers", "recipe", "fencing", "candidates", "ttl", "nemesis_on", "schedule", "docker_hosts")


def resolve_spec(args: argparse.Namespace) -> tuple[TestSpec, Any]:
    """The validated, resolved spec and its target plugin; SpecError for anything the user must fix."""
    from targets.registry import PluginError, get_target, target_names

    overrides = {k: getattr(args, k, None) for k in _OVERRIDES}
    overrides["schedule"] = schedule_argument(overrides["schedule"])
    spec = build_spec(args.spec, overrides)
    if spec.workload == "election":
        # The recipe names its coordination service: --target is needed only to say it again.
        given = overrides.get("target") is not None or (args.spec and "target" in load_spec_file(args.spec))
        spec = dataclasses.replace(spec, target=election_target(spec.target, spec.recipe, bool(given)))
    check_spec(spec, targets=target_names())
    try:
        target = get_target(spec.target)
    except PluginError as e:  # not installed, or it failed to import: only this run stops
        raise SpecError(str(e)) from None
    check_spec(spec, targets=target_names(), bugs=sorted(target.bugs()))
    problems = option_problems(spec, target)
    if problems:
        raise SpecError(f"options: {problems[0]}")
    # Nemesis.problems() includes the target's unsupported_faults().
    problems = list(dict.fromkeys(nemesis_problems(spec, target)))
    if problems:
        raise SpecError(f"cannot inject on this run: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    return spec.resolve(), target


def option_problems(spec: TestSpec, target) -> list[str]:
    """What the target finds wrong with the spec's `options:` (its optional unsupported_options), before
    anything starts."""
    from targets.base import option_problems as target_option_problems

    return target_option_problems(target, spec.options)


def nemesis_problems(spec: TestSpec, target) -> list[str]:
    """What this host or target cannot do of the chosen faults (e.g. no netem), asked of the nemesis
    before anything starts; it needs only the node names, not a running cluster."""
    if not spec.nemesis:
        return []
    from nemesis.core import Nemesis

    class _Names:
        node_ids = [f"n{i}" for i in range(1, spec.nodes + 1)]
        ips: dict[str, str] = {}

    if spec.workload == "election" and spec.nemesis_on == "candidates":  # its nemesis drives them (harness.election)
        from targets.candidates.plugin import Candidates

        _Names.node_ids = [f"c{i}" for i in range(1, spec.candidates + 1)]
        target = Candidates(spec.recipe or "")
    return list(Nemesis(_Names(), target, list(spec.nemesis)).problems())


def run(args: argparse.Namespace) -> int:
    from harness.errors import UsageError

    try:
        spec, target = resolve_spec(args)
    except SpecError as e:
        raise UsageError(str(e)) from None
    return int(execute(spec, target, quiet=args.quiet))


class _TargetClient:
    """The run loop's client: the target's workload client plus its status probe, by node id."""

    def __init__(self, target, addresses: dict[str, str], timeout: float):
        self.target = target
        self.addresses = addresses
        self.inner = target.client(addresses, timeout=timeout)

    async def invoke(self, node: str, op: dict[str, Any]) -> dict[str, Any]:
        return await self.inner.invoke(node, op)

    async def status(self, node: str) -> dict[str, Any] | None:
        return await self.target.status_probe(self.addresses[node], timeout=0.2)

    async def close(self) -> None:
        await self.inner.close()


def make_nemesis(cluster, target, spec: TestSpec):
    from nemesis.core import Nemesis

    return Nemesis(cluster, target, list(spec.nemesis), random.Random(f"{spec.seed}:nemesis"))


def docker_parts(spec: TestSpec, target, log):
    """The real cluster, client factory and nemesis factory of a run: Docker containers of the target."""
    from harness.cluster import DockerCluster
    from harness.engines import place
    from nemesis.registry import node_layers
    from targets.base import TargetOptions

    run_id = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
    placement = None
    if spec.docker_hosts or spec.placement:
        placement = place([f"n{i}" for i in range(1, spec.nodes + 1)], list(spec.docker_hosts), spec.placement)
    cluster = DockerCluster(run_id, target, spec.nodes, TargetOptions(bugs=spec.bugs, settings=dict(spec.options),
                                                                   client_timeout=spec.op_timeout),
                            log=log, layers=node_layers(spec.nemesis, target), placement=placement)

    def open_client(node_ips):
        return _TargetClient(target, cluster.addresses, spec.op_timeout)

    def open_nemesis(node_ips):
        return make_nemesis(cluster, target, spec)

    return cluster, list(cluster.node_ids), open_client, open_nemesis


def execute(spec: TestSpec, target, quiet: bool = False, out=None, parts=docker_parts) -> int:
    """Run a resolved spec end to end and print its summary; the exit code.
    `parts(spec, target, log)` gives (cluster, node ids, client factory, nemesis factory)."""
    from checkers.composite import check_history
    from checkers.verdict import ExitCode, exit_code_for
    from harness.progress import Progress
    from harness.run import RunLoop
    from harness.store import create_run_folder
    from nemesis.registry import facts_reader

    out = out or sys.stdout
    folder = create_run_folder(spec.store, spec.test or "test")
    folder.write_spec(spec.to_yaml())
    workload = spec_workload(spec)
    model = workload.model
    progress = Progress(quiet=quiet)
    loop_class = RunLoop
    if getattr(workload, "autonomous", False) and parts is docker_parts:
        import functools

        from harness.election import ElectionRunLoop, election_parts

        parts = functools.partial(election_parts, workload=workload, client_class=_TargetClient)
        loop_class = ElectionRunLoop
    cluster, nodes, open_client, open_nemesis = parts(spec, target, progress.message)
    run_id = getattr(cluster, "run_id", None)  # the label on its containers: `splitbrain clean --run`
    # Replaced at the end; a harness killed mid-run leaves this, which says so.
    folder.write_results({"test": spec.test, "seed": spec.seed, "valid": "unknown", "status": "running",
                          "model": model, "workload": spec.workload, "run_id": run_id,
                          "command": reproduce_command(folder)})
    schedule = plan_faults(spec, nodes, getattr(cluster, "faulted_target", target))
    progress.message(f"splitbrain run: {spec.test} seed {spec.seed} -> {folder.path}")
    loop = loop_class(
        spec,
        cluster,
        open_client,
        open_nemesis if spec.nemesis else None,
        workload,
        schedule,
        folder.history,
        logs_dir=folder.logs,
        progress=progress,
        handle_signals=True,
    )
    started = time.monotonic()
    outcome = loop.run()
    run_s = time.monotonic() - started
    write_played(folder, spec, loop)
    if outcome.infra_error and "warmup" not in outcome.phases:
        # The cluster never came up (no Docker daemon, an image that cannot be built):
        # nothing ran, so one line that says why, not a summary of nothing.
        folder.write_results({"test": spec.test, "seed": spec.seed, "valid": "unknown", "status": "infra-error",
                              "exit_code": ExitCode.USAGE, "model": model, "run_id": run_id, "run": outcome.as_dict(),
                              "command": reproduce_command(folder)})
        first_line = outcome.infra_error.strip().splitlines()[0] if outcome.infra_error.strip() else "unknown error"
        print(f"splitbrain run: the cluster did not come up: {first_line}", file=sys.stderr)
        return ExitCode.USAGE
    progress.message(f"splitbrain run: checking {folder.history}")
    check_started = time.monotonic()
    history = read_valid_history(folder.history)
    checked = check_history(folder.history, workload, history=history, extra=spec.checkers,
                            fault_facts=facts_reader())
    check_s = time.monotonic() - check_started
    verdict = checked["valid"]
    if outcome.infra_error:
        verdict, code = "infrastructure error", ExitCode.USAGE
    elif outcome.interrupted:
        code = ExitCode.USAGE if verdict is not False else ExitCode.ANOMALY
    else:
        code = exit_code_for(verdict)
    if outcome.recovered is False and code == ExitCode.VALID:
        verdict, code = "unknown", ExitCode.UNKNOWN
    results = {
        "test": spec.test,
        "seed": spec.seed,
        "valid": verdict,
        "exit_code": int(code),
        "status": "interrupted" if outcome.interrupted else "infra-error" if outcome.infra_error else "complete",
        "model": model,
        "run_id": run_id,
        "workload": spec.workload,
        "nemesis": list(spec.nemesis),
        "bugs": list(spec.bugs),
        "checkers": checked.get("checkers", {}),
        "stats": checked.get("stats", {}),
        "availability": {**availability(outcome.counts, checked.get("stats", {})),
                         "not_leader_outside_faults": not_leader_outside_faults(history)},
        "history_error": checked.get("history_error"),
        "run": outcome.as_dict(),
        "timings": {"run_s": round(run_s, 3), "check_s": round(check_s, 3), **outcome.phases},
        "run_dir": str(folder.path),
        "command": reproduce_command(folder),
    }
    found = anomaly_times(results["checkers"])
    faults_start = outcome.phases.get("faults")
    # The matrix measures detection from here: the faults phase may open with a quiet interval.
    results["first_fault_s"] = first_fault = first_fault_s(folder.history)
    results["anomalies_found_at"] = {
        name: {"at_s": t, "into_faults_s": None if faults_start is None else round(t - faults_start, 3),
               "from_first_fault_s": None if first_fault is None else round(t - first_fault, 3),
               "after_faults": faults_before(folder.history, t)[-3:]}
        for name, t in found.items()
    }
    folder.write_results(results)
    report = render_report(folder, history)
    print_summary(results, folder, report, out)
    return code


def plan_faults(spec: TestSpec, nodes: list[str], target: Any):
    """The run's fault plan: the seeded list, a guided planner, or the spec's own entries.
    `target`: ops it cannot do (strobe-clock without a clock file) are not drawn, or are refused."""
    from nemesis.guided import GuidedPlanner
    from nemesis.schedule import ScheduleError, make_schedule, parse_schedule

    if spec.schedule == "guided":
        return GuidedPlanner(spec.seed, spec.nemesis, nodes, spec.nemesis_interval, spec.time_limit, target=target)
    if spec.schedule == "random":
        return make_schedule(spec.seed, spec.nemesis, nodes, spec.nemesis_interval, spec.time_limit, target=target)
    try:
        return parse_schedule(list(spec.schedule), nodes, target)
    except ScheduleError as e:
        raise SpecError(f"schedule: {e}") from None


def write_played(folder, spec: TestSpec, loop) -> None:
    """schedule.yaml: the fault ops the run played, as entries a spec's `schedule` takes. A guided run,
    which its seed alone cannot replay, also gets replay.yaml (its spec playing exactly those) and
    guided.json (each step's state, reward and choice)."""
    import json

    import yaml

    from nemesis.schedule import schedule_entries

    entries = schedule_entries(loop.played)
    (folder.path / "schedule.yaml").write_text(yaml.safe_dump(entries, sort_keys=False))
    planner = getattr(loop, "planner", None)
    if planner is not None:
        replay = dataclasses.replace(spec, schedule=tuple(entries))
        (folder.path / REPLAY).write_text(replay.to_yaml())
        (folder.path / "guided.json").write_text(json.dumps(planner.decisions, indent=1) + "\n")


REPLAY = "replay.yaml"


def spec_workload(spec: TestSpec):
    """The spec's workload, with the options of the spec that are its own."""
    from workloads.base import make_workload

    return make_workload(spec.workload, spec.seed, keys=spec.active_keys(), ops_per_key=spec.ops_per_key,
                         recipe=spec.recipe, fencing=spec.fencing, candidates=spec.candidates, ttl=spec.ttl,
                         nemesis_on=spec.nemesis_on)


def availability(counts: dict[str, dict[str, int]], stats: dict[str, Any]) -> dict[str, float | None]:
    """Share of client ops that were ok (overall, and during the fault phase alone), and the
    share of seconds in which the cluster acknowledged something."""
    faults = counts.get("faults") or {}
    total = sum(faults.values())
    return {
        "overall": stats.get("availability"),
        "during_faults": round(faults.get("ok", 0) / total, 4) if total else None,
        "served_seconds": stats.get("served_seconds_share"),
    }


def not_leader_outside_faults(history) -> dict[str, Any] | None:
    """Of the client ops invoked outside every fault window (a fault from its start op to the op
    that ends it, as the report draws them), how many a node refused as not-leader: what a healthy
    cluster turns away. None without a readable history or ops."""
    from bisect import bisect_right

    from reports.data import fault_bands

    ops = history.client_operations() if history is not None else []
    if not ops:
        return None
    end_ms = max(e.time for e in history.events) / 1e6
    merged: list[list[float]] = []
    for lo, hi in sorted((b["start"], b["end"]) for b in fault_bands(history, end_ms) if b["family"] != "heal"):
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    starts = [lo for lo, _ in merged]

    def outside(o) -> bool:
        i = bisect_right(starts, o.call / 1e6) - 1
        return i < 0 or o.call / 1e6 > merged[i][1]

    errors = {e.index: str(e.extra.get("error", "")) for e in history.events if e.type == "fail" and e.is_client}
    quiet = [o for o in ops if outside(o)]
    refused = sum(1 for o in quiet if o.status == "fail" and "not-leader" in errors.get(o.complete_index, ""))
    return {"ops": len(quiet), "not_leader": refused,
            "share": round(refused / len(quiet), 4) if quiet else None}


def anomaly_times(checkers: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Checker -> seconds since the run began at which its first anomaly became visible (where it says)."""
    from checkers.registry import read_verdicts

    out: dict[str, float] = {}
    for v in read_verdicts({"checkers": checkers}):
        times = [a.visible_at for a in v.anomalies if isinstance(a.visible_at, (int, float))]
        if v.valid is False and times:
            out[v.checker] = round(min(times) / 1e9, 3)
    return out


def faults_before(history_path: Path, at_s: float) -> list[str]:
    """The nemesis operations begun before `at_s` seconds: which faults led to an anomaly."""
    from history.events import iter_events

    seen = []
    for e in iter_events(history_path):
        if e.time / 1e9 > at_s:
            break
        if e.process == "nemesis" and e.type == "invoke":
            seen.append(e.f)
    return seen


def first_fault_s(history_path: Path) -> float | None:
    """When the first nemesis operation began, in seconds since the run began; None if none did."""
    from history.events import iter_events

    for e in iter_events(history_path):
        if e.process == "nemesis" and e.type == "invoke":
            return round(e.time / 1e9, 3)
    return None


def reproduce_command(folder) -> str:
    replay = folder.path / REPLAY
    return f"splitbrain run --spec {replay if replay.exists() else folder.spec}"


def read_valid_history(path: Path):
    """The run's history, read once for the checkers and the report; None if it does not
    validate (check_history then reports why, and the report reads what it can)."""
    from history.events import InvalidHistory, read_history

    try:
        return read_history(path)
    except InvalidHistory:
        return None


def render_report(folder, history=None) -> Path | None:
    """Write report.html (and refresh the store's index) with reports/; None if it could not be."""
    from reports.render import render_run

    try:
        return Path(render_run(folder.path, history=history))
    except Exception as e:  # a broken report must not hide the verdict
        print(f"splitbrain run: report not written: {type(e).__name__}: {e}", file=sys.stderr)
        return None


def verdict_word(v) -> str:
    if v is True:
        return "valid"
    if v is False:
        return "ANOMALY"
    return str(v or "unknown")


def verdict_lines(results: dict[str, Any]) -> list[str]:
    """A line per checker: its verdict and, for an anomaly, its first sentence and when it was found."""
    from checkers.registry import read_verdicts

    lines = []
    for v in read_verdicts(results):
        extra = ""
        if v.valid is False and v.anomalies:
            more = len(v.anomalies) - 1
            extra = f": {v.anomalies[0].summary}" + (f" (and {more} more)" if more else "")
        elif v.valid == "unknown" and v.reason:
            extra = f": {v.reason}"
        at = (results.get("anomalies_found_at") or {}).get(v.checker)
        if at:
            into = at["into_faults_s"]
            when = "during the warm-up" if into is not None and into < 0 else f"{into}s into the faults"
            extra += f" (at {at['at_s']}s, {when}"
            extra += f", after {', '.join(at['after_faults'])})" if at["after_faults"] else ", before any fault)"
        lines.append(f"  {v.checker:<16} {verdict_word(v.valid)}{extra}")
        if isinstance(v.details.get("in_brief"), str):  # a checker's line of facts, valid or not
            lines.append(f"  {'':<16} {v.details['in_brief']}")
    return lines


def print_summary(results: dict[str, Any], folder, report: Path | None, out) -> None:
    run = results["run"]
    stats = results.get("stats") or {}
    lines = [f"splitbrain run: {results['test']} (seed {results['seed']})", *verdict_lines(results)]
    if results.get("history_error"):
        lines.append(f"  history          INVALID: {results['history_error']}")
    if stats:
        avail = results.get("availability") or {}
        lines.append(
            f"  ops              {stats.get('ops', 0)} (ok {stats.get('ok', 0)}, fail {stats.get('fail', 0)}, "
            f"info {stats.get('info', 0)}), {stats.get('throughput_per_s') or 0}/s"
        )
        parts = []
        if avail.get("served_seconds") is not None:
            parts.append(f"served in {avail['served_seconds']:.1%} of seconds")
        if avail.get("overall") is not None:
            parts.append(f"{avail['overall']:.1%} of ops ok")
        if avail.get("during_faults") is not None:
            parts.append(f"{avail['during_faults']:.1%} during faults")
        if parts:
            lines.append(f"  availability     {', '.join(parts)}")
        quiet = avail.get("not_leader_outside_faults") or {}
        if quiet.get("share") is not None:
            lines.append(f"  not-leader       {quiet['share']:.1%} of the {quiet['ops']} ops outside fault windows "
                         f"({quiet['not_leader']} refused)")
    lines.append(f"  nemesis ops      {run.get('nemesis_ops', 0)}, observer samples {run.get('observer_samples', 0)}")
    if run.get("recovered") is not None:
        lines.append("  recovery         " + (f"served again {run['recovery_s']}s after heal" if run["recovered"]
                                              else "the cluster did NOT serve again within the recovery limit"))
    if run.get("interrupted"):
        lines.append(f"  interrupted      by {run['interrupted']}; cluster torn down")
    if run.get("infra_error"):
        lines.append(f"  infra error      {run['infra_error']}")
    lines.append(f"  verdict          {verdict_word(results['valid'])} (exit {results['exit_code']})")
    lines.append(f"  run folder       {folder.path}")
    if results.get("run_id"):
        lines.append(f"  cluster          run id {results['run_id']} (torn down in {run.get('teardown_s')}s)")
    lines.append(f"  report           {report if report else str(folder.report) + ' (not written, see above)'}")
    lines.append(f"  reproduce        {results['command']}")
    print("\n".join(lines), file=out)
