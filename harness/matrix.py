"""The detection matrix: for each (deliberate bug, fault mix), N seeded runs; how often the bug is caught,
how soon after the first fault, and whether the correct store stays valid under the same seeds and mixes.

A matrix file (YAML):

    name: bugs                       # optional; default the file's stem
    defaults: {nodes: 5, time-limit: 30, nemesis-interval: 3}   # any `splitbrain run` setting
    seeds: [1, 2, 3]                 # or a count: 3 means seeds 1, 2, 3
    mixes:                           # name -> the faults (a list or a string), or a mapping of settings
      partition: partition
      kill-partition: {nemesis: [kill, partition], nemesis-interval: 2}
    bugs:                            # bug -> the mixes to try it under (null: every mix)
      stale-read: [partition]
      ack-before-replicate: null
      lease-no-checkquorum: {mixes: [partition], options: {lease_reads: true}}   # settings of its own

Each (bug, mix) is a row; each distinct setting of the rows without their bug (a mix, plus the settings
a bug brings) is a control: the correct store with the same seeds. A control run with an anomaly is a
false positive, a failure of the harness rather than a finding, and the matrix says so and exits 1.

The runs are the suite's (harness/suite.py): one `splitbrain run --spec` per (row, seed), judged by the
suite's verdict rules. Each finished run is appended to the output folder's cells.jsonl, keyed by its
resolved spec, so a matrix run again into the same folder reruns only what did not finish (or could not
run). The table goes to matrix.json and matrix.md in that folder; the run index lists it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.spec import TestSpec, malformed_yaml
from harness.suite import (
    TEST_KEYS,
    Judged,
    Runner,
    SuiteError,
    SuiteRun,
    SuiteTest,
    _construct,
    _line,
    _norm,
    _pairs,
    check_field,
    run_suite,
    spec_of,
    top_level,
)
from history.bounded import compose_yaml, read_yaml_text
from history.formats import FormatError
from reports.index import MATRIX_DIR  # noqa: F401  (the matrices' folder under a store; the index lists them)

MATRIX_KEYS = ("name", "defaults", "seeds", "mixes", "bugs")
MAX_SEEDS = 100
CELLS = "cells.jsonl"
FLAGS = "(flags)"  # the source of a matrix given on the command line


@dataclass(frozen=True)
class Row:
    """One line of the table: a bug under a mix (bug None: a control, the correct store)."""

    bug: str | None
    mix: str
    test: SuiteTest
    control: str | None = None  # a bug row's control's test name

    @property
    def label(self) -> str:
        return f"{self.bug or 'correct'} x {self.mix}"


@dataclass(frozen=True)
class Matrix:
    name: str
    source: str
    seeds: tuple[int, ...]
    rows: tuple[Row, ...]  # bug rows, in file order
    controls: tuple[Row, ...]

    def runs(self) -> list[SuiteRun]:
        """Every (row, seed), seed by seed, so that an interrupted matrix has every row's first seeds."""
        everything = [*self.rows, *self.controls]
        return [SuiteRun(r.test, s) for s in self.seeds for r in everything]


# ---------------------------------------------------------------------------
# Loading


def load_matrix(path: str | Path, seeds: tuple[int, ...] | None = None, overrides: dict[str, Any] | None = None,
                only_bugs: tuple[str, ...] = (), only_mixes: tuple[str, ...] = (),
                target_check: bool = True) -> Matrix:
    """The validated matrix in `path`, or SuiteError naming the file, the line and the field.
    `seeds` and `overrides` (run settings such as time-limit) replace the file's; `only_*` keep those rows."""
    p = Path(path)
    try:
        return _matrix_from_text(read_yaml_text(p), str(p), p.stem, seeds, overrides, only_bugs, only_mixes,
                                 target_check)
    except FormatError as e:
        raise SuiteError(str(e)) from None


def matrix_from_flags(bugs: tuple[str, ...], mixes: tuple[str, ...], seeds: tuple[int, ...],
                      overrides: dict[str, Any], target_check: bool = True) -> Matrix:
    """A matrix given on the command line: every bug under every mix (each mix `NAME=FAULTS` or `FAULTS`)."""
    doc: dict[str, Any] = {"name": "matrix", "defaults": {}, "seeds": list(seeds), "mixes": {},
                           "bugs": {b: None for b in bugs}}
    for m in mixes:
        name, _, faults = m.rpartition("=")
        doc["mixes"][name or faults] = {"nemesis": faults.split(",")}
    return _matrix_from_text(yaml.safe_dump(doc, sort_keys=False), FLAGS, "matrix", None, overrides, (), (),
                             target_check)


def _matrix_from_text(text: str, source: str, stem: str, seeds, overrides, only_bugs, only_mixes,
                      target_check: bool) -> Matrix:
    try:
        root = compose_yaml(text)
        return _load(source, stem, root, seeds, overrides or {}, only_bugs, only_mixes, target_check)
    except yaml.YAMLError as e:
        raise SuiteError(malformed_yaml(source, e)) from None


def _load(source: str, stem: str, root, seeds_given, overrides, only_bugs, only_mixes, target_check) -> Matrix:
    def fail(node, where: str, what: str) -> SuiteError:
        if source == FLAGS:  # no file to point into: name the flag's value instead
            return SuiteError(f"{where.replace('mixes.', '--mix ').replace('bugs.', '--bug ')}: {what}")
        return SuiteError(f"{source}:{_line(node)}: {where}: {what}")

    top, name = top_level(root, source, stem, MATRIX_KEYS, "matrix", "mixes and bugs", fail)
    for k in ("mixes", "bugs"):
        if k not in top:
            raise fail(root, k, f"missing: a matrix needs {k}")

    settings: dict[str, tuple[Any, Any]] = {}  # key -> (value, node), the defaults
    if "defaults" in top:
        dn = top["defaults"][1]
        if not isinstance(dn, yaml.MappingNode):
            raise fail(dn, "defaults", "expected a mapping of run settings")
        settings.update(_settings(dn, "defaults", fail))
    for key, value in overrides.items():  # flags: checked like any setting, at the top of the file
        check_field(key, value, root, f"--{key}", fail)
        settings[key] = (value, root)

    seeds = seeds_given or _seeds(top.get("seeds"), fail) or (1,)

    mn = top["mixes"][1]
    if not isinstance(mn, yaml.MappingNode) or not mn.value:
        raise fail(mn, "mixes", "expected a mapping of mix names to faults")
    mixes: dict[str, dict[str, tuple[Any, Any]]] = {}
    for mix, kn, vn in _pairs(mn):
        where = f"mixes.{mix}"
        if mix in mixes:
            raise fail(kn, where, "given twice")
        if isinstance(vn, yaml.MappingNode):
            mixes[mix] = _settings(vn, where, fail)
            if "nemesis" not in mixes[mix]:
                raise fail(vn, where, "a mix needs its nemesis (the faults it mixes)")
        else:
            value = _construct(vn)
            check_field("nemesis", value, vn, where, fail)
            mixes[mix] = {"nemesis": (value, vn)}
    unknown = set(only_mixes) - set(mixes)
    if unknown:
        raise SuiteError(f"{source}: --mix {sorted(unknown)[0]}: no such mix; mixes: {', '.join(mixes)}")

    targets = None
    if target_check:
        from targets.registry import target_names

        targets = target_names()

    bn = top["bugs"][1]
    if not isinstance(bn, yaml.MappingNode) or not bn.value:
        raise fail(bn, "bugs", "expected a mapping of bug names to the mixes they are tried under")
    rows: list[Row] = []
    controls: dict[str, Row] = {}  # fingerprint of the spec without its bug -> control
    seen: set[str] = set()
    named = set()
    for bug, kn, vn in _pairs(bn):
        where = f"bugs.{bug}"
        if bug in seen:
            raise fail(kn, where, "given twice")
        seen.add(bug)
        own: dict[str, tuple[Any, Any]] = {}
        mix_names: list[str] | None = None
        mixes_node = vn
        if isinstance(vn, yaml.MappingNode):
            pairs = {_norm(k): (k, knode, vnode) for k, knode, vnode in _pairs(vn)}
            if "mixes" in pairs:
                mixes_node = pairs["mixes"][2]
                mix_names = _mix_list(_construct(mixes_node), mixes_node, f"{where}.mixes", fail)
            rest = yaml.MappingNode(vn.tag, [(knode, vnode) for _k, (_, knode, vnode) in pairs.items()
                                              if _k != "mixes"], vn.start_mark, vn.end_mark)
            own = _settings(rest, where, fail)
            if "bugs" in own:
                raise fail(own["bugs"][1], f"{where}.bugs", "a row's bug is its key; it takes no bugs of its own")
        else:
            mix_names = _mix_list(_construct(vn), vn, where, fail)
        for m in mix_names or []:
            if m not in mixes:
                raise fail(mixes_node, where, f"no mix named {m!r}; mixes: {', '.join(mixes)}")
        if only_bugs and bug not in only_bugs:
            continue
        named.add(bug)
        for mix in mix_names if mix_names is not None else list(mixes):
            if only_mixes and mix not in only_mixes:
                continue
            cell = {**settings, **mixes[mix], **own}
            test_name = f"{name}-{bug}-{mix}"
            spec = _spec(cell, bug, set(mixes[mix]) | set(own), vn, f"{where} x {mix}", fail, targets,
                         target_check, source, test_name)
            ctl_spec = _spec(cell, None, set(mixes[mix]) | set(own), vn, f"{where} x {mix}", fail, targets,
                             target_check, source, None)
            key = fingerprint(dataclasses.replace(ctl_spec, test=None, seed=None))
            if key not in controls:
                ctl_name = f"{name}-correct-{mix}" + (f"-as-{bug}" if own else "")
                controls[key] = Row(None, mix if not own else f"{mix} (settings of {bug})",
                                    SuiteTest(ctl_name, dataclasses.replace(ctl_spec, test=ctl_name), seeds,
                                              "valid"))
            rows.append(Row(bug, mix, SuiteTest(test_name, spec, seeds, "anomaly"), controls[key].test.name))
    missing = set(only_bugs) - named
    if missing:
        raise SuiteError(f"{source}: --bug {sorted(missing)[0]}: not a row of this matrix; bugs: {', '.join(seen)}")
    if not rows:
        raise SuiteError(f"{source}: no (bug, mix) row is left to run")
    return Matrix(name, source, tuple(seeds), tuple(rows), tuple(controls.values()))


def _settings(node: yaml.MappingNode, where: str, fail: Callable) -> dict[str, tuple[Any, Any]]:
    out = {}
    for k, kn, vn in _pairs(node):
        key = _norm(k)
        if key in TEST_KEYS:
            raise fail(kn, f"{where}.{k}", "belongs to a suite's test, not to a matrix (seeds are the matrix's)")
        value = _construct(vn)
        check_field(key, value, vn, f"{where}.{k}", fail)
        out[key] = (value, vn)
    return out


def _mix_list(value: Any, node, where: str, fail: Callable) -> list[str] | None:
    if value is None or value == "all":
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise fail(node, where, f"expected a list of mix names (or null for every mix), got {value!r}")
    return value


def _seeds(entry, fail: Callable) -> tuple[int, ...] | None:
    if entry is None:
        return None
    _kn, vn = entry
    v = _construct(vn)
    if isinstance(v, int) and not isinstance(v, bool):
        if not 1 <= v <= MAX_SEEDS:
            raise fail(vn, "seeds", f"expected a count from 1 to {MAX_SEEDS} or a list of seeds, got {v}")
        return tuple(range(1, v + 1))
    if not isinstance(v, list) or not v or any(isinstance(s, bool) or not isinstance(s, int) for s in v):
        raise fail(vn, "seeds", f"expected a count or a list of whole numbers, got {v!r}")
    if len(set(v)) != len(v):
        raise fail(vn, "seeds", "a seed is listed twice")
    return tuple(v)


def _spec(cell: dict[str, tuple[Any, Any]], bug: str | None, own: set[str], node, where: str, fail: Callable,
          targets, target_check: bool, source: str, test: str | None) -> TestSpec:
    values = {k: v for k, (v, _) in cell.items()}
    nodes = {k: n for k, (_, n) in cell.items()}
    values["bugs"] = [bug] if bug else []
    nodes["bugs"] = node
    spec = spec_of(values, nodes, own | {"bugs"}, node, where, fail, targets, target_check, source)
    return dataclasses.replace(spec, seed=None, test=test)


def fingerprint(spec: TestSpec) -> str:
    """A short stable digest of a spec: which runs are the same run (resuming, controls shared by rows)."""
    return hashlib.sha256(spec.to_yaml().encode()).hexdigest()[:16]


def parse_seeds(text: str) -> tuple[int, ...]:
    """'3' (seeds 1-3), '1-5', '2,7,9'; ValueError with the reason otherwise."""
    text = text.strip()
    try:
        if "," in text:
            seeds = tuple(int(s) for s in text.split(","))
        elif "-" in text[1:]:
            lo, hi = (int(s) for s in text.split("-", 1))
            if not lo <= hi:
                raise ValueError(f"{text!r} is an empty range")
            seeds = tuple(range(lo, hi + 1))
        else:
            n = int(text)
            if not 1 <= n <= MAX_SEEDS:
                raise ValueError(f"a count of seeds must be 1 to {MAX_SEEDS}, got {n}")
            seeds = tuple(range(1, n + 1))
    except ValueError as e:
        raise ValueError(f"expected N, LO-HI or a,b,c: {e}") from None
    if len(set(seeds)) != len(seeds) or len(seeds) > MAX_SEEDS:
        raise ValueError(f"expected at most {MAX_SEEDS} distinct seeds")
    return seeds


# ---------------------------------------------------------------------------
# Running


@dataclass(frozen=True)
class Cell:
    """What one (row, seed) run gave: its verdict and, when caught, the seconds from its first fault to
    its first anomalous operation (None when no checker placed the anomaly in time)."""

    test: str
    seed: int
    key: str  # fingerprint of the run's resolved spec
    verdict: str  # valid | anomaly | unknown | error
    after_s: float | None = None
    run_dir: str | None = None
    message: str = ""
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def detection_time(results: dict[str, Any] | None) -> float | None:
    """Seconds from the first fault to the earliest anomalous operation any checker placed in time."""
    found = (results or {}).get("anomalies_found_at") or {}
    times = []
    for at in found.values():
        t = at.get("from_first_fault_s")
        if t is None:
            t = at.get("into_faults_s")  # a run from before first_fault_s was recorded
        if isinstance(t, (int, float)):
            times.append(float(t))
    return min(times) if times else None


def cell_of(j: Judged) -> Cell:
    verdict = j.verdict
    r = j.result
    return Cell(j.run.test.name, j.run.seed, fingerprint(j.run.spec()), verdict,
                detection_time(r.results) if verdict == "anomaly" else None,
                str(r.run_dir) if r.run_dir else None, j.message, r.duration_s)


def read_cells(out: Path) -> dict[str, Cell]:
    """The cells an earlier run of this matrix into `out` finished with a verdict, by fingerprint."""
    done: dict[str, Cell] = {}
    try:
        lines = (out / CELLS).read_text().splitlines()
    except OSError:
        return done
    names = {f.name for f in dataclasses.fields(Cell)}
    for line in lines:
        try:
            d = json.loads(line)
            cell = Cell(**{k: v for k, v in d.items() if k in names})
        except (ValueError, TypeError):
            continue  # a line cut short by a crash: that run is simply run again
        if cell.verdict != "error":
            done[cell.key] = cell
    return done


def run_matrix(matrix: Matrix, runner: Runner, out: Path, parallel: int = 1, retry_errors: int = 0,
               log: Callable[[str], None] | None = None) -> list[Cell]:
    """Run what `out` does not have yet, appending each finished run to out/cells.jsonl; every cell."""
    import time

    out.mkdir(parents=True, exist_ok=True)
    done = read_cells(out)
    runs = matrix.runs()
    todo = [r for r in runs if fingerprint(r.spec()) not in done]
    if log and len(todo) < len(runs):
        log(f"splitbrain matrix: {len(runs) - len(todo)} of {len(runs)} runs already in {out / CELLS}; "
            f"running the other {len(todo)}")
    labels = {r.test.name: r.label for r in (*matrix.rows, *matrix.controls)}
    started = time.monotonic()
    finished = [0]

    def on_done(j: Judged) -> None:
        cell = cell_of(j)
        with open(out / CELLS, "a") as f:
            f.write(json.dumps(cell.as_dict()) + "\n")
        done[cell.key] = cell if cell.verdict != "error" else done.get(cell.key, cell)
        finished[0] += 1
        if log:
            took = time.monotonic() - started
            left = (len(todo) - finished[0]) * took / finished[0]
            what = cell.verdict
            if cell.after_s is not None:
                when = "after" if cell.after_s >= 0 else "before"
                what = f"{cell.verdict} {abs(cell.after_s):.1f}s {when} the first fault"
            log(f"splitbrain matrix: [{finished[0]}/{len(todo)}] {labels[cell.test]} seed {cell.seed}: {what} "
                f"({cell.duration_s:.0f}s; about {left / 60:.0f} min left)"
                + (f": {cell.message}" if cell.verdict == "error" else ""))

    outcome = run_suite(todo, runner, parallel=parallel, on_done=on_done, retry_errors=retry_errors)
    errors = {fingerprint(j.run.spec()): cell_of(j) for j in outcome.judged if j.verdict == "error"}
    cells = []
    for r in runs:
        key = fingerprint(r.spec())
        if key in done:
            cells.append(done[key])
        elif key in errors:
            cells.append(errors[key])
    return cells


# ---------------------------------------------------------------------------
# The table


@dataclass
class Tally:
    runs: int = 0
    anomalies: int = 0
    valid: int = 0
    unknown: int = 0
    errors: int = 0
    times: list[float] = field(default_factory=list)

    def add(self, cell: Cell) -> None:
        self.runs += 1
        if cell.verdict == "anomaly":
            self.anomalies += 1
            if cell.after_s is not None:
                self.times.append(cell.after_s)
        elif cell.verdict == "valid":
            self.valid += 1
        elif cell.verdict == "unknown":
            self.unknown += 1
        else:
            self.errors += 1


def table(matrix: Matrix, cells: list[Cell]) -> dict[str, Any]:
    """The matrix's table as data: a row per (bug, mix), a row per control, and whether the harness failed."""
    by_test: dict[str, list[Cell]] = {}
    for c in cells:
        by_test.setdefault(c.test, []).append(c)
    expected = len(matrix.seeds)

    def tally(name: str) -> Tally:
        t = Tally()
        for c in sorted(by_test.get(name, []), key=lambda c: c.seed):
            t.add(c)
        return t

    controls = {}
    for r in matrix.controls:
        t = tally(r.test.name)
        controls[r.test.name] = {
            "mix": r.mix, "test": r.test.name, "seeds_run": t.runs, "seeds": expected, "false_positives": t.anomalies,
            "valid": t.valid, "unknown": t.unknown, "errors": t.errors,
            "false_positive_seeds": sorted(c.seed for c in by_test.get(r.test.name, []) if c.verdict == "anomaly"),
            "false_positive_runs": sorted(c.run_dir or "" for c in by_test.get(r.test.name, [])
                                          if c.verdict == "anomaly"),
        }
    rows = []
    for r in matrix.rows:
        t = tally(r.test.name)
        ctl = controls[r.control] if r.control else None
        rows.append({
            "bug": r.bug, "mix": r.mix, "test": r.test.name, "seeds_run": t.runs, "seeds": expected,
            "caught": t.anomalies, "valid": t.valid, "unknown": t.unknown, "errors": t.errors,
            "detection_rate": round(t.anomalies / t.runs, 3) if t.runs else None,
            "median_s": round(statistics.median(t.times), 1) if t.times else None,
            "worst_s": round(max(t.times), 1) if t.times else None,
            "timed": len(t.times),
            # Caught before the first fault (a negative time): the bug shows without faults, as stale-read
            # does with a client pinned to a lagging follower.
            "before_first_fault": sum(1 for x in t.times if x < 0),
            "control": r.control,
            "false_positives": ctl["false_positives"] if ctl else None,
            "control_seeds_run": ctl["seeds_run"] if ctl else None,
        })
    false_positives = sum(c["false_positives"] for c in controls.values())
    errors = sum(r["errors"] for r in rows) + sum(c["errors"] for c in controls.values())
    return {
        "name": matrix.name, "source": matrix.source, "seeds": list(matrix.seeds),
        "rows": rows, "controls": list(controls.values()),
        "runs": len(cells), "runs_planned": len(matrix.runs()), "errors": errors,
        "false_positives": false_positives, "harness_failure": false_positives > 0,
    }


def exit_code(t: dict[str, Any], interrupted: bool = False) -> int:
    """1 if the correct store had an anomaly anywhere (a harness failure), else 2 if a run could not run,
    the matrix was interrupted or some runs are missing, else 0. A bug not caught is a measurement, not a failure."""
    if t["harness_failure"]:
        return 1
    if t["errors"] or interrupted or t["runs"] < t["runs_planned"]:
        return 2
    return 0


def _rate(r: dict[str, Any]) -> str:
    return f"{r['caught']}/{r['seeds_run']}" if r["seeds_run"] else "-"


def _secs(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _notes(r: dict[str, Any]) -> str:
    bits = []
    if r["unknown"]:
        bits.append(f"{r['unknown']} unknown")
    if r["errors"]:
        bits.append(f"{r['errors']} could not run")
    if r.get("before_first_fault"):
        bits.append(f"{r['before_first_fault']} caught before the first fault")
    if r.get("timed") is not None and r["caught"] > r["timed"]:
        bits.append(f"{r['caught'] - r['timed']} caught without a time")
    if r["seeds_run"] < r["seeds"]:
        bits.append(f"{r['seeds'] - r['seeds_run']} not run")
    return ", ".join(bits)


def markdown(t: dict[str, Any]) -> str:
    """The table for a README: a row per (bug, mix), then the controls, then the verdict on the harness."""
    lines = ["| bug | mix | caught | median s | worst s | correct store: false positives | notes |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in t["rows"]:
        fp = "-" if r["false_positives"] is None else f"{r['false_positives']}/{r['control_seeds_run']}"
        lines.append(f"| {r['bug']} | {r['mix']} | {_rate(r)} | {_secs(r['median_s'])} | {_secs(r['worst_s'])} "
                     f"| {fp} | {_notes(r)} |")
    lines += ["", "| control (correct store) | seeds run | false positives | notes |", "| --- | --- | --- | --- |"]
    for c in t["controls"]:
        note = _notes({**c, "caught": 0, "timed": None})
        if c["false_positives"]:
            note = ", ".join(filter(None, [f"anomaly in seeds {c['false_positive_seeds']}", note]))
        lines.append(f"| {c['mix']} | {c['seeds_run']} | {c['false_positives']} | {note} |")
    lines.append("")
    lines.append("caught: seeds whose run found an anomaly, of the seeds run. median s and worst s: seconds from the "
                 "first fault to the first anomalous operation, over the caught seeds that placed it in time "
                 "(negative: before the first fault). False positives: anomalies of the correct store under the "
                 "row's control (the same mix, settings and seeds without the bug).")
    lines.append("")
    lines.append(verdict_line(t))
    return "\n".join(lines) + "\n"


def verdict_line(t: dict[str, Any]) -> str:
    if t["harness_failure"]:
        bad = [f"{c['mix']} (seeds {c['false_positive_seeds']})" for c in t["controls"] if c["false_positives"]]
        return (f"HARNESS FAILURE: the correct store had an anomaly in {t['false_positives']} run(s): "
                f"{'; '.join(bad)}. A false positive means a checker or the harness is wrong, not the store.")
    caught = sum(1 for r in t["rows"] if r["caught"])
    return (f"{caught} of {len(t['rows'])} (bug, mix) rows caught their bug at least once; the correct store "
            f"was valid in every control run ({sum(c['seeds_run'] for c in t['controls'])} runs)"
            + (f"; {t['errors']} run(s) could not run" if t["errors"] else "") + ".")


def text_table(t: dict[str, Any]) -> str:
    """The table for a terminal: aligned columns, one line per row and per control."""
    head = ("bug", "mix", "caught", "rate", "median s", "worst s", "false pos.", "notes")
    rows = []
    for r in t["rows"]:
        fp = "-" if r["false_positives"] is None else f"{r['false_positives']}/{r['control_seeds_run']}"
        rate = "-" if r["detection_rate"] is None else f"{100 * r['detection_rate']:.0f}%"
        rows.append((r["bug"], r["mix"], _rate(r), rate, _secs(r["median_s"]), _secs(r["worst_s"]), fp, _notes(r)))
    for c in t["controls"]:
        rows.append(("(correct)", c["mix"], "-", "-", "-", "-", f"{c['false_positives']}/{c['seeds_run']}",
                     _notes({**c, "caught": 0, "timed": None})))
    widths = [max(len(h), *(len(x[i]) for x in rows)) for i, h in enumerate(head)]
    out = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [head, *rows]]
    return "\n".join(out + [verdict_line(t)])


def write_table(out: Path, t: dict[str, Any], command: str | None = None) -> tuple[Path, Path]:
    """matrix.json and matrix.md in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    data = {**t, "command": command}
    js, md = out / "matrix.json", out / "matrix.md"
    js.write_text(json.dumps(data, indent=1) + "\n")
    md.write_text(f"# matrix {t['name']}\n\n" + (f"`{command}`\n\n" if command else "") + markdown(t))
    return js, md
