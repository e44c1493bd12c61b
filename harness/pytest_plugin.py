"""The splitbrain pytest plugin: chaos tests written as ordinary pytest tests (registered by entry point `pytest11`).

    import pytest
    from hypothesis import given, settings, HealthCheck
    from nemesis.strategies import fault_schedules

    @pytest.mark.chaos(target="raftkv", nodes=3, bugs=["stale-read"], workload="register")
    def test_partitions(chaos):
        result = chaos.run([{"at": 1.0, "fault": "partition", "grudge": "isolate-leader", "duration": 3.0}])
        # or PARTITION.start(at=1.0, grudge="isolate-leader"), PARTITION.stop(at=4.0): docs/fault-families.md
        result.assert_valid()                          # anomaly sentences, report path and schedule on failure

    @pytest.mark.chaos(nodes=3)
    @settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(schedule=fault_schedules(["n1", "n2", "n3"], max_faults=3))
    def test_any_schedule(chaos, schedule):
        chaos.run(schedule).assert_valid()

Fixtures:
  chaos_spec     the TestSpec of the test: the `chaos` marker's settings (any `splitbrain run` setting)
  chaos          a handle whose `run(schedule)` starts a fresh cluster of the target, drives the workload
                 through the schedule's faults, heals, checks and returns a `ChaosResult` (verdicts, anomaly
                 sentences, `history`, `report`); every report path lands in the test's user_properties and,
                 when the test fails, in a "splitbrain chaos" section of its output
  chaos_cluster  a running Docker cluster of the target (torn down after the test)
  chaos_client   the target's client bound to that cluster (async `invoke(node, op)`, `status(node)`)
  chaos_nemesis  a nemesis on that cluster: `invoke({"f": "kill", "value": {"nodes": ["n1"]}})`, `heal_all()`

Runs go to --chaos-store (default: a temporary folder per session).
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

MARKER = "chaos"


def pytest_addoption(parser) -> None:
    group = parser.getgroup("splitbrain")
    group.addoption("--chaos-store", metavar="DIR", default=None,
                    help="where chaos tests' run folders go (default: a temporary folder per session)")


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(target='raftkv', nodes=3, bugs=(), workload='register', **settings): the cluster and workload "
        "of a splitbrain chaos test (any `splitbrain run` setting)")


@dataclass
class ChaosResult:
    """One checked phase of faults: the run's results.json, its folder and the schedule that was played."""

    results: dict[str, Any]
    run_dir: Path
    schedule: list = field(default_factory=list)

    @property
    def valid(self) -> bool | str:
        return self.results.get("valid")

    @property
    def report(self) -> Path:
        return self.run_dir / "report.html"

    @property
    def sentences(self) -> list[str]:
        from harness.suite import anomaly_sentences

        return anomaly_sentences(self.results) if self.valid is False else []

    @property
    def history(self):
        """The recorded history (history.events.History): client ops, nemesis ops, leader observations."""
        from history.events import read_history

        return read_history(self.run_dir / "history.jsonl")

    def explain(self) -> str:
        from nemesis.strategies import describe

        lines = [f"verdict {self.valid} (seed {self.results.get('seed')})"]
        lines += [f"  {s}" for s in self.sentences]
        if self.results.get("run", {}).get("infra_error"):
            lines.append(f"  infrastructure error: {self.results['run']['infra_error']}")
        lines.append(f"report   {self.report}")
        lines.append(f"schedule {self.run_dir / 'schedule.yaml'} (nemesis.strategies.schedule_from_yaml replays it):")
        lines.append(describe(self.schedule) or "  (no faults)")
        return "\n".join(lines)

    def assert_valid(self) -> None:
        if self.valid is not True:
            raise AssertionError(self.explain())

    def assert_anomaly(self) -> None:
        if self.valid is not False:
            raise AssertionError("expected an anomaly, got:\n" + self.explain())


def run_schedule(spec, schedule: list, quiet: bool = True, parts=None, target=None) -> ChaosResult:
    """Run `spec` (resolved: seed and test set) with an explicit fault schedule on a fresh Docker cluster;
    the checked result. The same steps as `splitbrain run`, with the schedule given instead of drawn.
    `schedule`: ScheduledOps and/or dicts (nemesis.schedule.parse_schedule); a bad entry or one the target
    cannot do is a ScheduleError before anything starts. `parts`, `target`: as `harness.commands.run.execute`'s."""
    from checkers.composite import check_history
    from checkers.verdict import ExitCode, exit_code_for
    from harness.commands.run import docker_parts, render_report, spec_workload
    from harness.progress import Progress
    from harness.run import RunLoop
    from harness.store import create_run_folder
    from nemesis.registry import facts_reader
    from nemesis.schedule import parse_schedule
    from nemesis.strategies import schedule_length, schedule_to_yaml
    from targets.registry import get_target

    target = target or get_target(spec.target)
    schedule = parse_schedule(schedule, [f"n{i}" for i in range(1, spec.nodes + 1)], target)
    families = tuple(dict.fromkeys(op.family for op in schedule))
    spec = dataclasses.replace(spec, nemesis=families, time_limit=max(spec.time_limit, schedule_length(schedule) + 1))
    folder = create_run_folder(spec.store, spec.test or "chaos")
    folder.write_spec(spec.to_yaml())
    (folder.path / "schedule.yaml").write_text(schedule_to_yaml(schedule))
    workload = spec_workload(spec)
    progress = Progress(quiet=quiet)
    cluster, _nodes, open_client, open_nemesis = (parts or docker_parts)(spec, target, progress.message)
    loop = RunLoop(spec, cluster, open_client, open_nemesis if schedule else None, workload, list(schedule),
                   folder.history, logs_dir=folder.logs, progress=progress)
    started = time.monotonic()
    outcome = loop.run()
    results: dict[str, Any] = {"test": spec.test, "seed": spec.seed, "run_id": getattr(cluster, "run_id", None),
                               "workload": spec.workload, "nemesis": list(families), "bugs": list(spec.bugs),
                               "model": workload.model, "run": outcome.as_dict(),
                               "run_dir": str(folder.path), "command": "nemesis.strategies.schedule_from_yaml("
                               f"{folder.path / 'schedule.yaml'}) with seed {spec.seed}"}
    if outcome.infra_error and "warmup" not in outcome.phases:
        results.update(valid="unknown", status="infra-error", exit_code=int(ExitCode.USAGE), checkers={})
    else:
        checked = check_history(folder.history, workload, extra=spec.checkers, fault_facts=facts_reader())
        verdict = checked["valid"]
        if outcome.infra_error:
            verdict = "infrastructure error"
        elif outcome.recovered is False and verdict is True:
            verdict = "unknown"
        results.update(valid=verdict, status="infra-error" if outcome.infra_error else "complete",
                       exit_code=int(ExitCode.USAGE if outcome.infra_error else exit_code_for(verdict)),
                       checkers=checked.get("checkers", {}), stats=checked.get("stats", {}),
                       history_error=checked.get("history_error"),
                       timings={"run_s": round(time.monotonic() - started, 3), **outcome.phases})
    folder.write_results(results)
    render_report(folder)
    return ChaosResult(results, folder.path, list(schedule))


class Chaos:
    """The `chaos` fixture: runs phases of faults against fresh clusters of the marker's target."""

    def __init__(self, spec, node):
        self.spec = spec
        self.node = node
        self.results: list[ChaosResult] = []
        self._seen: dict[str, ChaosResult] = {}

    @property
    def nodes(self) -> list[str]:
        return [f"n{i}" for i in range(1, self.spec.nodes + 1)]

    def run(self, schedule: list, seed: int | None = None, fresh: bool = False, **settings: Any) -> ChaosResult:
        """A fresh cluster, the workload through `schedule`'s faults, heal, check: the result.

        A schedule already run in this test (same seed and settings) gives its first result again unless
        `fresh`: a real cluster's timing differs between runs, and hypothesis, which replays a failing example
        to confirm it and while shrinking, would otherwise call the search flaky. Replay with fresh=True."""
        from nemesis.schedule import parse_schedule
        from nemesis.strategies import schedule_to_yaml

        schedule = parse_schedule(schedule, self.nodes)  # dicts too; ScheduleError names a bad entry
        key = repr((schedule_to_yaml(schedule), seed, sorted(settings.items())))
        if not fresh and key in self._seen:
            return self._seen[key]
        spec = dataclasses.replace(self.spec, seed=seed if seed is not None else self.spec.seed, **settings)
        spec = spec.resolve()
        result = run_schedule(spec, schedule)
        self._seen[key] = result
        self.results.append(result)
        self.node.user_properties.append(("splitbrain_report", str(result.report)))
        return result


def _spec_from_marker(request, store: Path):
    from harness.spec import spec_from_mapping

    marker = request.node.get_closest_marker(MARKER)
    settings: dict[str, Any] = {"nodes": 3, "time_limit": 10.0, "warmup": 2.0, "concurrency": 6, "rate": 100.0}
    if marker is not None:
        settings.update({k.replace("-", "_"): v for k, v in marker.kwargs.items()})
    settings.setdefault("test", request.node.name.split("[")[0])
    settings["store"] = str(store)
    return spec_from_mapping(settings, f"@pytest.mark.{MARKER}")


@pytest.fixture(scope="session")
def _chaos_store(request, tmp_path_factory) -> Path:
    given = request.config.getoption("--chaos-store")
    return Path(given) if given else tmp_path_factory.mktemp("splitbrain-store")


@pytest.fixture
def chaos_spec(request, _chaos_store):
    """The test's TestSpec (no seed yet): the `chaos` marker's settings over small, quick defaults."""
    return _spec_from_marker(request, _chaos_store)


@pytest.fixture
def chaos(request, chaos_spec) -> Chaos:
    handle = Chaos(chaos_spec, request.node)
    request.node._splitbrain_chaos = handle
    return handle


@pytest.fixture
def chaos_cluster(chaos_spec):
    """A running Docker cluster of the marker's target; torn down after the test."""
    import uuid

    from harness.cluster import DockerCluster
    from targets.base import TargetOptions
    from targets.registry import get_target

    target = get_target(chaos_spec.target)
    cluster = DockerCluster(f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}", target, chaos_spec.nodes,
                            TargetOptions(bugs=chaos_spec.bugs, settings=dict(chaos_spec.options),
                                          client_timeout=chaos_spec.op_timeout))
    cluster.target = target
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.teardown()


@pytest.fixture
def chaos_client(chaos_cluster, chaos_spec):
    from harness.commands.run import _TargetClient

    return _TargetClient(chaos_cluster.target, chaos_cluster.addresses, chaos_spec.op_timeout)


@pytest.fixture
def chaos_nemesis(chaos_cluster, chaos_spec):
    from nemesis.core import Nemesis
    from nemesis.strategies import FAMILIES

    nemesis = Nemesis(chaos_cluster, chaos_cluster.target, list(FAMILIES), random.Random(chaos_spec.seed or 0))
    try:
        yield nemesis
    finally:
        nemesis.heal_all()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    handle = getattr(item, "_splitbrain_chaos", None)
    if handle is None or report.when != "call" or not report.failed or not handle.results:
        return
    report.sections.append(("splitbrain chaos", "\n\n".join(r.explain() for r in handle.results[-3:])))
