"""Sharding a suite over CI jobs, and merging what the shards ran.

`splitbrain suite FILE --shard K/N` runs shard K of N: every run of the suite (a test with one seed)
belongs to exactly one shard. The split depends only on the set of runs, not on their order in the
file: runs are taken longest first (the expected duration of a run is its warm-up, its faults and a
fixed cost for bring-up, recovery and teardown), ties broken by a hash of the run's name, and each
goes to the shard with the least expected time so far (LPT). Each suite writes a manifest of its
runs (which run, its exit code, its folder, its time) into its store; `splitbrain merge FILE STORE...`
reads the shards' manifests, copies their run folders into one store, judges every run again from its
results.json exactly as the suite did, and gives one table, one JUnit file and one exit code. A run
that no shard ran is an error, as a run that could not run is.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.suite import RunResult, SuiteOutcome, SuiteRun, judge

# Bring-up, recovery, final reads, checking and teardown of one run on this kind of machine.
RUN_OVERHEAD_S = 20.0
MANIFEST_GLOB = "suite-*.json"


class ShardError(ValueError):
    """A --shard value or a set of manifests the user must fix; one line."""


def parse_shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m:
        raise ShardError(f"--shard: expected K/N such as 2/3, got {text!r}")
    k, n = int(m.group(1)), int(m.group(2))
    if not 1 <= n <= 1000 or not 1 <= k <= n:
        raise ShardError(f"--shard {text}: K must be between 1 and N, and N between 1 and 1000")
    return k, n


def expected_s(run: SuiteRun) -> float:
    spec = run.test.spec
    return spec.warmup + spec.time_limit + RUN_OVERHEAD_S


def _tiebreak(run: SuiteRun) -> str:
    return hashlib.sha256(run.name.encode()).hexdigest()


def shards(runs: Iterable[SuiteRun], n: int) -> list[list[SuiteRun]]:
    """The runs split into n shards (see the module docstring); each shard in the suite's own order."""
    runs = list(runs)
    order = {id(r): i for i, r in enumerate(runs)}
    load = [0.0] * n
    out: list[list[SuiteRun]] = [[] for _ in range(n)]
    for r in sorted(runs, key=lambda r: (-expected_s(r), _tiebreak(r))):
        k = min(range(n), key=lambda i: (load[i], i))
        out[k].append(r)
        load[k] += expected_s(r)
    return [sorted(s, key=lambda r: order[id(r)]) for s in out]


def shard_runs(runs: list[SuiteRun], k: int, n: int) -> list[SuiteRun]:
    return shards(runs, n)[k - 1]


# ---------------------------------------------------------------- manifests


def manifest_name(suite_name: str, shard: tuple[int, int] | None) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", suite_name) or "suite"
    return f"suite-{safe}.json" if shard is None else f"suite-{safe}-shard-{shard[0]}-of-{shard[1]}.json"


def write_manifest(store: Path, suite_name: str, shard: tuple[int, int] | None, outcome: SuiteOutcome) -> Path:
    """What this suite (or shard) ran, for `merge`: run names, exit codes, folders (relative to the store)."""
    store.mkdir(parents=True, exist_ok=True)

    def rel(p: Path | None) -> str | None:
        if p is None:
            return None
        try:
            return str(Path(p).resolve().relative_to(store.resolve()))
        except ValueError:
            return str(Path(p).resolve())

    data = {
        "suite": suite_name,
        "shard": list(shard) if shard else None,
        "duration_s": round(outcome.duration_s, 3),
        "runs": [{"name": j.run.name, "exit_code": j.result.exit_code, "run_dir": rel(j.result.run_dir),
                  "duration_s": round(j.result.duration_s, 3), "error": j.result.error} for j in outcome.judged],
        "not_started": [r.name for r in outcome.skipped],
    }
    path = store / manifest_name(suite_name, shard)
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def _manifests(store: Path, suite_name: str) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for p in sorted(store.glob(MANIFEST_GLOB)):
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise ShardError(f"{p}: unreadable manifest: {e}") from None
        if isinstance(data, dict) and data.get("suite") == suite_name:
            out.append((p, data))
    return out


def merge(runs: list[SuiteRun], suite_name: str, stores: list[Path], out_store: Path) -> SuiteOutcome:
    """Every run of the suite judged from the shard that ran it, its folder copied into out_store."""
    by_name = {r.name: r for r in runs}
    found: dict[str, tuple[Path, dict[str, Any]]] = {}
    shard_sets: set[int] = set()
    duration = 0.0
    for store in stores:
        manifests = _manifests(store, suite_name)
        if not manifests:
            raise ShardError(f"{store}: no manifest of suite {suite_name!r} (suite-*.json); is it a shard's store?")
        for path, data in manifests:
            if data.get("shard"):
                shard_sets.add(int(data["shard"][1]))
            duration = max(duration, float(data.get("duration_s") or 0))
            for entry in data.get("runs", []):
                name = entry.get("name")
                if name not in by_name:
                    raise ShardError(f"{path}: run {name!r} is not in the suite (a manifest of another version?)")
                if name in found:
                    raise ShardError(f"{path}: run {name} was also run by {found[name][0]}")
                found[name] = (path, {**entry, "_store": store})
    if len(shard_sets) > 1:
        raise ShardError(f"the manifests come from splits into {sorted(shard_sets)} shards: merge one split")
    outcome = SuiteOutcome(duration_s=duration)
    for run in runs:
        if run.name not in found:
            result = RunResult(2, error="no shard ran it (a shard missing from the merge, or stopped early)")
        else:
            result = _copied_result(found[run.name][1], out_store)
        outcome.judged.append(judge(run, result))
    return outcome


def _copied_result(entry: dict[str, Any], out_store: Path) -> RunResult:
    src_store: Path = entry["_store"]
    run_dir = entry.get("run_dir")
    if not run_dir:
        return RunResult(int(entry.get("exit_code", 2)), duration_s=float(entry.get("duration_s") or 0),
                         error=entry.get("error"))
    src = (src_store / run_dir) if not Path(run_dir).is_absolute() else Path(run_dir)
    dst = out_store / run_dir if not Path(run_dir).is_absolute() else out_store / src.parent.name / src.name
    if src.resolve() != dst.resolve():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
    try:
        results = json.loads((dst / "results.json").read_text())
    except (OSError, ValueError):
        results = None
    return RunResult(int(entry.get("exit_code", 2)), run_dir=dst, results=results,
                     duration_s=float(entry.get("duration_s") or 0), error=entry.get("error"))
