"""Suites: a YAML file of chaos tests (defaults plus a list), validated with file:line:field errors, run, judged and written as JUnit.

A suite file:

    name: smoke                      # optional; default the file's stem
    defaults:                        # any `splitbrain run` setting, for every test
      nodes: 3
      time-limit: 20
    tests:
      - name: partition              # optional; default from target, workload, faults
        nemesis: partition
        seeds: [1, 2]                # or `seed-count: 3` (fresh random seeds, recorded)
      - name: stale-read
        nemesis: partition
        bugs: [stale-read]
        expect: anomaly              # valid (default) | anomaly | any

`expect: anomaly` is a deliberate-bug test: finding the anomaly is a pass and
not finding it a failure (the harness lost its power to catch that bug). A
test without bugs may expect an anomaly the system documents (etcd's
serializable reads may be stale) if it says so in `because: "..."`.
`expect: any` runs a test whose outcome is recorded but not judged (a bug this
host rarely exposes). Each (test, seed) pair is one run and one JUnit test case.

Loading composes the YAML first so every error can name the line of the field
that is wrong; nothing runs until the whole file is valid.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import random
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.spec import (
    SpecError,
    TestSpec,
    check_spec,
    default_test_name,
    malformed_yaml,
    spec_from_mapping,
)
from history.bounded import BoundedSafeLoader, compose_yaml, read_yaml_text
from history.formats import FormatError

EXPECTS = ("valid", "anomaly", "any")
SUITE_KEYS = ("name", "defaults", "tests")
# Keys of a test that are the suite's, not the run's.
TEST_KEYS = ("name", "seeds", "seed-count", "expect", "because")
MAX_SEED_COUNT = 100


class SuiteError(Exception):
    """A suite file the user must fix; the message is one line: file:line: field: what is wrong."""


@dataclass(frozen=True)
class SuiteTest:
    """One entry of `tests:`: a spec (no seed yet), the seeds to run it with, and what it should find."""

    name: str
    spec: TestSpec
    seeds: tuple[int, ...]
    expect: str = "valid"
    line: int = 0
    fresh: bool = False  # its seeds were drawn fresh at load: another process loading the file gets others


@dataclass(frozen=True)
class SuiteRun:
    """One run of a suite: a test with one seed; one JUnit test case."""

    test: SuiteTest
    seed: int

    @property
    def name(self) -> str:
        return f"{self.test.name}[seed={self.seed}]"

    def spec(self, store: str | None = None) -> TestSpec:
        changes: dict[str, Any] = {"seed": self.seed, "test": self.test.name}
        if store is not None:
            changes["store"] = store
        return dataclasses.replace(self.test.spec, **changes)


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    tests: tuple[SuiteTest, ...]

    def runs(self, pattern: str | None = None) -> list[SuiteRun]:
        """Every (test, seed) pair, in file order; `pattern` keeps tests whose name contains it or matches it as a glob."""
        out = []
        for t in self.tests:
            if pattern and pattern not in t.name and not fnmatch.fnmatch(t.name, pattern):
                continue
            out.extend(SuiteRun(t, s) for s in t.seeds)
        return out


# ---------------------------------------------------------------------------
# Loading and validation


def _line(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 0


def _construct(node: yaml.Node) -> Any:
    # The bounded loader's constructors: its integer bound applies here too.
    loader = BoundedSafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _pairs(node: yaml.MappingNode) -> list[tuple[str, yaml.Node, yaml.Node]]:
    return [(str(_construct(k)), k, v) for k, v in node.value]


def _norm(key: str) -> str:
    key = key.replace("_", "-")
    return "bugs" if key == "bug" else key


def _field_of(message: str, keys: Iterable[str]) -> str | None:
    """Which setting a SpecError from check_spec is about, from its words."""
    words = message.replace(":", " ").split()
    aliases = {"bug": "bugs", "nemesis-interval": "nemesis-interval"}
    for w in words:
        w = aliases.get(w, w)
        if w in keys:
            return w
    if message.startswith("a partition needs"):
        return "nodes"
    if message.startswith("cannot inject"):
        return "nemesis"
    return None


def load_suite(path: str | Path, target_check: bool = True, seed_base: int | None = None) -> Suite:
    """The validated suite in `path`, or SuiteError naming the file, the line and the field. `seed_base`:
    a test's seed-count seeds are drawn from it and the test's name instead of fresh (the same in every
    process that loads the suite with it: the shards of one CI run)."""
    p = Path(path)
    try:
        # A regular file of at most 1 MiB, UTF-8; aliases expand within a budget.
        text = read_yaml_text(p)
        root = compose_yaml(text)
        return _load_suite(p, root, target_check, seed_base)
    except FormatError as e:
        raise SuiteError(str(e)) from None
    except yaml.YAMLError as e:
        # Also what constructing a value refuses: a !!python tag, an unhashable key.
        raise SuiteError(malformed_yaml(p, e)) from None


def top_level(root: yaml.Node | None, source: str, stem: str, keys: tuple[str, ...], kind: str, needs: str,
              fail: Callable) -> tuple[dict[str, tuple[yaml.Node, yaml.Node]], str]:
    """A suite's or matrix's top mapping (key -> (key node, value node)) and its name (default `stem`),
    or SuiteError at an unknown key or a name that is not one."""
    if not isinstance(root, yaml.MappingNode):
        raise SuiteError(f"{source}:{_line(root) or 1}: expected a mapping with {needs}")
    top = {k: (kn, vn) for k, kn, vn in _pairs(root)}
    for k, (kn, _) in top.items():
        if k not in keys:
            raise fail(kn, k, f"unknown {kind} key; known: {', '.join(keys)}")
    name = stem
    if "name" in top:
        v = _construct(top["name"][1])
        if not isinstance(v, str) or not v.strip():
            raise fail(top["name"][1], "name", f"expected a name, got {v!r}")
        name = v.strip()
    return top, name


def _load_suite(p: Path, root: yaml.Node | None, target_check: bool, seed_base: int | None) -> Suite:

    def fail(node: yaml.Node | None, where: str, what: str) -> SuiteError:
        return SuiteError(f"{p}:{_line(node)}: {where}: {what}")

    top, name = top_level(root, str(p), p.stem, SUITE_KEYS, "suite", "defaults and tests", fail)

    defaults: dict[str, tuple[Any, yaml.Node]] = {}
    if "defaults" in top:
        dn = top["defaults"][1]
        if not isinstance(dn, yaml.MappingNode):
            raise fail(dn, "defaults", "expected a mapping of run settings")
        for k, kn, vn in _pairs(dn):
            key = _norm(k)
            if key in TEST_KEYS:
                raise fail(kn, f"defaults.{k}", "belongs to a test, not to the defaults")
            check_field(key, _construct(vn), vn, f"defaults.{k}", fail)
            defaults[key] = (_construct(vn), vn)

    if "tests" not in top:
        raise fail(root, "tests", "missing: a suite needs a list of tests")
    tn = top["tests"][1]
    if not isinstance(tn, yaml.SequenceNode) or not tn.value:
        raise fail(tn, "tests", "expected a non-empty list of tests")

    targets = None
    if target_check:
        from targets.registry import target_names

        targets = target_names()

    tests: list[SuiteTest] = []
    seen: dict[str, int] = {}
    for i, node in enumerate(tn.value):
        where = f"tests[{i}]"
        if not isinstance(node, yaml.MappingNode):
            raise fail(node, where, "expected a mapping of settings")
        own: dict[str, tuple[Any, yaml.Node, yaml.Node]] = {}
        for k, kn, vn in _pairs(node):
            key = _norm(k)
            if key in own:
                raise fail(kn, f"{where}.{k}", "given twice")
            own[key] = (_construct(vn), kn, vn)
        settings = {k: v for k, (v, _) in defaults.items()}
        value_nodes = {k: vn for k, (_, vn) in defaults.items()}
        for key, (v, _kn, vn) in own.items():
            if key in TEST_KEYS:
                continue
            check_field(key, v, vn, f"{where}.{key}", fail)
            settings[key] = v
            value_nodes[key] = vn
        spec = spec_of(settings, value_nodes, set(own), node, where, fail, targets, target_check, str(p))

        test_name = default_test_name(spec)
        if "name" in own:
            v, _, vn = own["name"]
            if not isinstance(v, str) or not v.strip():
                raise fail(vn, f"{where}.name", f"expected a name, got {v!r}")
            test_name = v.strip()
        if test_name in seen:
            raise fail(node, f"{where}.name", f"{test_name!r} is already the name of the test at line {seen[test_name]}"
                       "; give each test its own name")
        seen[test_name] = _line(node)

        if "because" in own and not (isinstance(own["because"][0], str) and own["because"][0].strip()):
            raise fail(own["because"][2], f"{where}.because", f"expected a sentence, got {own['because'][0]!r}")
        expect = "valid"
        if "expect" in own:
            v, _, vn = own["expect"]
            if v not in EXPECTS:
                raise fail(vn, f"{where}.expect", f"expected one of {', '.join(EXPECTS)}, got {v!r}")
            expect = v
            # An anomaly is expected of a deliberate bug, or of behaviour a system documents
            # (etcd's serializable reads may be stale), which the test must then name.
            because = own.get("because", (None, None, None))[0]
            if expect == "anomaly" and not spec.bugs and not (isinstance(because, str) and because.strip()):
                raise fail(vn, f"{where}.expect", "anomaly is for a deliberate-bug test, but this test has no bugs "
                           "(for behaviour the system documents, say why with `because:`)")

        seeds = _seeds(own, spec, where, fail, random.Random(f"{seed_base}:{test_name}") if seed_base is not None
                       else random.SystemRandom())
        fresh = seed_base is None and "seeds" not in own and ("seed-count" in own or spec.seed is None)
        tests.append(SuiteTest(test_name, dataclasses.replace(spec, seed=None, test=test_name), seeds, expect,
                               _line(node), fresh))
    return Suite(name, p, tuple(tests))


def spec_of(settings: dict[str, Any], value_nodes: dict[str, yaml.Node], own: set[str], node: yaml.Node,
            where: str, fail: Callable, targets: list[str] | None, target_check: bool, source: str) -> TestSpec:
    """The checked spec of one test's settings, or the SuiteError `fail` makes at the line of the value
    that is wrong: `where.key` for a key of the test's own (`own`), `defaults.key (in where)` for one inherited.
    Also the matrix's (harness/matrix.py), whose cells are built from defaults, a mix and a bug."""
    try:
        spec = spec_from_mapping({k.replace("-", "_"): v for k, v in settings.items()}, source)
    except SpecError as e:  # pragma: no cover - check_field caught it per field
        raise fail(node, where, str(e)) from None

    def fail_spec(message: str) -> SuiteError:
        key = _field_of(message, value_nodes)
        if key is None:
            return fail(node, where, message)
        # A value inherited from the defaults is wrong there, for this test.
        label = f"{where}.{key}" if key in own else f"defaults.{key} (in {where})"
        return fail(value_nodes[key], label, message)

    try:
        check_spec(spec, targets=targets)
        if target_check:
            from harness.commands.run import nemesis_problems, option_problems
            from targets.registry import PluginError, get_target

            try:
                target = get_target(spec.target)
            except PluginError as e:
                raise SpecError(str(e)) from None
            check_spec(spec, targets=targets, bugs=sorted(target.bugs()))
            problems = option_problems(spec, target)
            if problems:
                raise SpecError(f"options: {problems[0]}")
            problems = list(dict.fromkeys(nemesis_problems(spec, target)))
            if problems:
                raise SpecError(f"cannot inject on this host: {problems[0]}")
    except SpecError as e:
        raise fail_spec(str(e)) from None
    return spec


def check_field(key: str, value: Any, node: yaml.Node, where: str, fail: Callable) -> None:
    """SuiteError at the value's line for an unknown setting or a value of the wrong kind."""
    try:
        spec_from_mapping({key: value}, "")
    except SpecError as e:
        msg = str(e)
        if msg.startswith(": "):
            msg = msg[2:]
        known = TEST_KEYS if "unknown setting" in msg and "." in where and where.startswith("tests") else ()
        if known:
            msg += f" (a test may also set {', '.join(known)})"
        raise fail(node, where, msg) from None


def _seeds(own: dict, spec: TestSpec, where: str, fail: Callable, rng: random.Random) -> tuple[int, ...]:
    given = [k for k in ("seeds", "seed-count") if k in own]
    if len(given) > 1:
        raise fail(own["seed-count"][1], where, "give seeds or seed-count, not both")
    if "seeds" in own:
        v, _, vn = own["seeds"]
        if isinstance(v, int) and not isinstance(v, bool):
            v = [v]
        if not isinstance(v, list) or not v or any(isinstance(s, bool) or not isinstance(s, int) for s in v):
            raise fail(vn, f"{where}.seeds", f"expected a list of whole numbers, got {v!r}")
        if len(set(v)) != len(v):
            raise fail(vn, f"{where}.seeds", "a seed is listed twice")
        return tuple(v)
    if "seed-count" in own:
        v, _, vn = own["seed-count"]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_SEED_COUNT:
            raise fail(vn, f"{where}.seed-count", f"expected a whole number from 1 to {MAX_SEED_COUNT}, got {v!r}")
        return tuple(rng.randrange(2**31) for _ in range(v))
    if spec.seed is not None:
        return (spec.seed,)
    return (rng.randrange(2**31),)


# ---------------------------------------------------------------------------
# Running and judging


@dataclass(frozen=True)
class RunResult:
    """What one run gave back: its exit code, run folder and results.json (None when it never wrote one)."""

    exit_code: int
    run_dir: Path | None = None
    results: dict[str, Any] | None = None
    duration_s: float = 0.0
    error: str | None = None  # why it could not run, for an infrastructure error


@dataclass(frozen=True)
class Judged:
    """A run's result judged against the test's expectation: pass, failure, error or unknown."""

    run: SuiteRun
    result: RunResult
    outcome: str  # "pass" | "failure" | "error" | "unknown"
    verdict: str  # "valid" | "anomaly" | "unknown" | "error"
    message: str  # one line: why it failed (or what was caught)
    details: str = ""

    @property
    def report(self) -> Path | None:
        if self.result.run_dir is None:
            return None
        return self.result.run_dir / "report.html"


OUTCOMES = ("pass", "failure", "error", "unknown")


def anomaly_sentences(results: dict[str, Any]) -> list[str]:
    """One sentence per anomaly in a run's results (the checkers' own, as the report shows them)."""
    from checkers.registry import read_verdicts

    return [f"{v.checker}: {a.summary}" for v in read_verdicts(results) if v.valid is False for a in v.anomalies]


def verdict_of(result: RunResult) -> str:
    r = result.results
    if r is None or result.exit_code == 2 or r.get("status") in ("infra-error", "interrupted", "running"):
        return "anomaly" if r is not None and r.get("valid") is False and result.exit_code != 2 else "error"
    v = r.get("valid")
    return "valid" if v is True else "anomaly" if v is False else "unknown"


def judge(run: SuiteRun, result: RunResult) -> Judged:
    """The outcome of one run against what its test expects."""
    verdict = verdict_of(result)
    where = f"report {result.run_dir / 'report.html'}" if result.run_dir else "no run folder"
    sentences = anomaly_sentences(result.results) if verdict == "anomaly" else []
    first = sentences[0] if sentences else ""
    more = f" (and {len(sentences) - 1} more)" if len(sentences) > 1 else ""
    details = "\n".join(sentences)
    expect = run.test.expect
    if verdict == "error":
        why = result.error or ((result.results or {}).get("run") or {}).get("infra_error") or f"exit code {result.exit_code}"
        why = " ".join(str(why).split())[:500]
        return Judged(run, result, "error", verdict, f"could not run: {why}; {where}", details)
    if verdict == "unknown":
        return Judged(run, result, "unknown", verdict, f"verdict unknown (a checker ran out of time or the cluster did "
                      f"not recover); {where}", details)
    if verdict == "anomaly":
        if expect == "valid":
            return Judged(run, result, "failure", verdict, f"unexpected anomaly: {first}{more}; {where}", details)
        return Judged(run, result, "pass", verdict, f"caught {', '.join(run.test.spec.bugs) or 'an anomaly'}: "
                      f"{first}{more}; {where}", details)
    if expect == "anomaly":
        return Judged(run, result, "failure", verdict,
                      f"deliberate bug {', '.join(run.test.spec.bugs)} NOT caught: the history was valid, so the "
                      f"harness lost its power to find it; {where}", details)
    return Judged(run, result, "pass", verdict, f"valid; {where}", details)


def suite_exit_code(judged: Iterable[Judged]) -> int:
    """2 if any run could not run, else 1 if any was a failure, else 3 if any verdict was unknown, else 0."""
    outcomes = {j.outcome for j in judged}
    if "error" in outcomes:
        return 2
    if "failure" in outcomes:
        return 1
    if "unknown" in outcomes:
        return 3
    return 0


Runner = Callable[[SuiteRun], RunResult]


@dataclass
class SuiteOutcome:
    judged: list[Judged] = field(default_factory=list)
    skipped: list[SuiteRun] = field(default_factory=list)  # not started because of --fail-fast
    duration_s: float = 0.0

    @property
    def exit_code(self) -> int:
        return suite_exit_code(self.judged) if self.judged or not self.skipped else 2


def run_suite(runs: list[SuiteRun], runner: Runner, parallel: int = 1, fail_fast: bool = False,
              on_done: Callable[[Judged], None] | None = None, retry_errors: int = 0) -> SuiteOutcome:
    """Run every run with `runner`, at most `parallel` at once, judged in the order they were listed.
    With fail_fast, no new run starts after one fails or errs; the rest are reported as skipped.
    A run that could not run (no verdict at all) is run again up to `retry_errors` times; an anomaly,
    a missed bug or an unknown verdict never is."""
    import threading
    import time

    started = time.monotonic()
    stop = threading.Event()
    judged: dict[int, Judged] = {}

    def one(i: int) -> None:
        if fail_fast and stop.is_set():
            return
        run = runs[i]
        errors: list[str] = []
        for _attempt in range(1 + max(0, retry_errors)):
            try:
                result = runner(run)
            except Exception as e:  # a runner that broke is this run's infrastructure error, not the suite's end
                result = RunResult(2, error=f"{type(e).__name__}: {e}")
            j = judge(run, result)
            if j.outcome != "error":
                break
            errors.append(j.message)
        if errors and j.outcome != "error":
            # Say so: a retried infrastructure error is still something to look at.
            j = dataclasses.replace(j, message=f"{j.message} (after {len(errors)} infrastructure error(s): "
                                    f"{errors[0]})")
        judged[i] = j
        if j.outcome in ("failure", "error"):
            stop.set()
        if on_done:
            on_done(j)

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        for f in [pool.submit(one, i) for i in range(len(runs))]:
            f.result()
    out = SuiteOutcome([judged[i] for i in sorted(judged)], [r for i, r in enumerate(runs) if i not in judged])
    out.duration_s = time.monotonic() - started
    return out


# ---------------------------------------------------------------------------
# Output


def junit_xml(suite_name: str, outcome: SuiteOutcome) -> ET.ElementTree:
    """JUnit XML: one <testcase> per run; failure = unexpected anomaly or uncaught bug, error = could not run,
    skipped = verdict unknown or not started (--fail-fast)."""
    judged = outcome.judged
    counts = {o: sum(1 for j in judged if j.outcome == o) for o in OUTCOMES}
    suites = ET.Element("testsuites", name=f"splitbrain suite {suite_name}")
    ts = ET.SubElement(suites, "testsuite", {
        "name": suite_name,
        "tests": str(len(judged) + len(outcome.skipped)),
        "failures": str(counts["failure"]),
        "errors": str(counts["error"]),
        "skipped": str(counts["unknown"] + len(outcome.skipped)),
        "time": f"{outcome.duration_s:.3f}",
    })
    for j in judged:
        tc = ET.SubElement(ts, "testcase", classname=f"splitbrain.{suite_name}", name=j.run.name,
                           time=f"{j.result.duration_s:.3f}")
        props = ET.SubElement(tc, "properties")
        for k, v in (("seed", j.run.seed), ("expect", j.run.test.expect), ("verdict", j.verdict),
                     ("bugs", ",".join(j.run.test.spec.bugs)), ("report", j.report or ""),
                     ("run_dir", j.result.run_dir or "")):
            ET.SubElement(props, "property", name=k, value=str(v))
        if j.outcome == "failure":
            ET.SubElement(tc, "failure", message=j.message, type="anomaly" if j.verdict == "anomaly" else "not-caught"
                          ).text = j.details or j.message
        elif j.outcome == "error":
            ET.SubElement(tc, "error", message=j.message, type="infrastructure").text = j.result.error or j.message
        elif j.outcome == "unknown":
            ET.SubElement(tc, "skipped", message=j.message)
        out = [j.message]
        if j.report:
            out.append(f"report: {j.report}")
        if j.result.results and j.result.results.get("command"):
            out.append(f"reproduce: {j.result.results['command']}")
        ET.SubElement(tc, "system-out").text = "\n".join(out)
    for r in outcome.skipped:
        tc = ET.SubElement(ts, "testcase", classname=f"splitbrain.{suite_name}", name=r.name, time="0")
        ET.SubElement(tc, "skipped", message="not run: --fail-fast stopped the suite after a failure")
    ET.indent(suites)
    return ET.ElementTree(suites)


def write_junit(path: str | Path, suite_name: str, outcome: SuiteOutcome) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    junit_xml(suite_name, outcome).write(p, encoding="utf-8", xml_declaration=True)
    return p


def summary_table(outcome: SuiteOutcome) -> str:
    """The suite's table: one row per run, then the tally."""
    head = ("test", "seed", "expect", "verdict", "outcome", "time", "report")
    rows = [(j.run.test.name, str(j.run.seed), j.run.test.expect, j.verdict,
             j.outcome.upper() if j.outcome != "pass" else "pass", f"{j.result.duration_s:.0f}s",
             str(j.report) if j.report else "-") for j in outcome.judged]
    rows += [(r.test.name, str(r.seed), r.test.expect, "-", "skipped", "-", "-") for r in outcome.skipped]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [head, *rows]]
    tally = {o: sum(1 for j in outcome.judged if j.outcome == o) for o in OUTCOMES}
    lines.append(f"{len(outcome.judged)} runs in {outcome.duration_s:.0f}s: {tally['pass']} passed, "
                 f"{tally['failure']} failed, {tally['error']} could not run, {tally['unknown']} unknown"
                 + (f", {len(outcome.skipped)} not started" if outcome.skipped else ""))
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# The real runner: `splitbrain run --spec` in a subprocess per run


@contextlib.contextmanager
def stopping_on_signals(runner: Runner, log: Callable[[str], None], who: str = "suite"):
    """While inside, SIGINT and SIGTERM stop `runner` (its runs under way get SIGTERM and tear their
    clusters down; the rest do not start) instead of ending the process; yields the list of signal
    names received, empty if none."""
    import signal

    interrupted: list[str] = []

    def interrupt(signum, frame) -> None:
        if not interrupted:
            log(f"splitbrain {who}: {signal.Signals(signum).name}: stopping the runs under way, starting no more")
        interrupted.append(signal.Signals(signum).name)
        runner.stop()  # type: ignore[attr-defined]

    old = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield interrupted
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def subprocess_runner(store: str | None, spec_dir: Path, log: Callable[[str], None] | None = None,
                      command: list[str] | None = None) -> Runner:
    """A runner that writes each run's resolved spec to spec_dir and runs `splitbrain run --spec` on it.

    A subprocess per run: each has its own cluster and network (its own run id),
    its own signal handling and teardown, and one run's crash cannot take the
    suite down with it. `runner.stop()` (the suite's SIGTERM or SIGINT) passes a
    SIGTERM on to every run under way, so each tears its cluster down, and starts
    no more runs: a suite killed by CI's timeout leaves nothing running."""
    import json
    import os
    import re
    import signal
    import subprocess
    import sys
    import threading
    import time

    base = command or [sys.executable, "-m", "harness.cli"]
    live: set[subprocess.Popen] = set()
    lock = threading.Lock()
    stopping = threading.Event()

    def stop() -> None:
        stopping.set()
        with lock:
            for child in live:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)

    def run(r: SuiteRun) -> RunResult:
        if stopping.is_set():
            return RunResult(2, None, None, 0.0, "not run: the suite was interrupted")
        spec = r.spec(store)
        spec_dir.mkdir(parents=True, exist_ok=True)
        spec_file = spec_dir / f"{re.sub(r'[^A-Za-z0-9._+-]+', '_', r.name)}.yaml"
        spec_file.write_text(spec.to_yaml())
        if log:
            log(f"splitbrain suite: start {r.name}")
        t0 = time.monotonic()
        wall0 = time.time()
        with lock:
            child = subprocess.Popen([*base, "run", "--spec", str(spec_file), "--quiet"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            live.add(child)
        try:
            out, err = child.communicate()
        finally:
            with lock:
                live.discard(child)
        proc = subprocess.CompletedProcess(child.args, child.returncode, out, err)
        took = time.monotonic() - t0
        run_dir = None
        m = re.search(r"^\s*run folder\s+(\S.*)$", proc.stdout, re.M)
        if m:
            run_dir = Path(m.group(1).strip())
        else:  # no summary (the cluster did not come up): the newest folder of this test with this seed
            from harness.store import _safe

            cands = []
            for res in Path(spec.store).glob(f"{_safe(spec.test or 'test')}/*/results.json"):
                try:
                    if res.stat().st_mtime >= wall0 - 1 and json.loads(res.read_text()).get("seed") == r.seed:
                        cands.append(res.parent)
                except (OSError, ValueError):
                    continue
            run_dir = max(cands, key=lambda d: d.name) if cands else None
        results = None
        if run_dir is not None:
            try:
                results = json.loads((run_dir / "results.json").read_text())
            except (OSError, ValueError):
                results = None
        error = None
        if proc.returncode == 2 or results is None:
            # The run's own words first: its infrastructure error, else the last line it wrote to stderr.
            tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            infra = ((results or {}).get("run") or {}).get("infra_error")
            if infra:
                error = " ".join(str(infra).split())
            elif tail:
                error = tail[-1]
            elif results is None:
                error = f"splitbrain run exited {proc.returncode} without a results.json"
            else:
                error = f"splitbrain run exited {proc.returncode} ({results.get('status', 'no status')})"
        return RunResult(proc.returncode, run_dir, results, round(took, 3), error)

    run.stop = stop  # type: ignore[attr-defined]
    return run
