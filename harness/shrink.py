"""Shrinking a failing run's fault schedule: delta debugging over its fault episodes.

A run folder's schedule.yaml holds every op the run played (random, guided or hand-written alike). An
episode is a start op with the op that stopped it (a partition and its heal, a kill and its restart,
a bounce), so that every candidate is a schedule whose faults all end. Zeller's ddmin removes
episodes while the run still fails (`ddmin` below is pure; `shrink_run` plays each candidate as a real
run of the same spec and seed, in RUN/shrink/); what is left is 1-minimal: dropping any one episode
of it makes the run pass, as far as the budget of runs allowed to find out. Timing varies between
runs, so "fails" means that a checker which failed in the original run fails again in one of
`attempts` runs of the candidate.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from nemesis.registry import family

T = TypeVar("T")
SHRUNK = "shrunk.yaml"


def episodes(entries: list[dict[str, Any]]) -> list[tuple[dict[str, Any], ...]]:
    """The played ops grouped as start + the stop that ended it, in the order they began. A stop with no
    start before it (nothing to end) is left out; so is nothing else."""
    out: list[list[dict[str, Any]]] = []
    open_: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        name = e["family"]
        if e["f"] == family(name).stop_op:
            ep = open_.pop(name, None)
            if ep is not None:
                ep.append(e)
            continue
        ep = [e]
        open_[name] = ep
        out.append(ep)
    return [tuple(ep) for ep in out]


def schedule_of(chosen: Sequence[tuple[dict[str, Any], ...]]) -> list[dict[str, Any]]:
    """The entries of these episodes, in time order (times as the original run played them)."""
    return sorted((e for ep in chosen for e in ep), key=lambda e: e["at"])


def ddmin(items: list[T], fails: Callable[[list[T]], bool], budget: int) -> tuple[list[T], int]:
    """A 1-minimal failing subsequence of `items` (which fail) by Zeller's ddmin, and the tests it used;
    stops early, with what it has, once `budget` tests have run. Each distinct subsequence is tested once."""
    seen: dict[tuple[int, ...], bool] = {}
    index = {id(x): i for i, x in enumerate(items)}

    def test(candidate: list[T]) -> bool:
        key = tuple(index[id(x)] for x in candidate)
        if key not in seen:
            seen[key] = fails(candidate)
        return seen[key]

    n = 2
    while len(items) >= 2 and len(seen) < budget:
        size = len(items) / n
        chunks = [items[round(i * size):round((i + 1) * size)] for i in range(n)]
        chunks = [c for c in chunks if c]
        candidates = [(c, 2) for c in chunks]  # a chunk alone, then (from n = 3) everything but a chunk
        if n > 2:
            candidates += [([x for c in chunks if c is not d for x in c], max(n - 1, 2)) for d in chunks]
        for candidate, shrink_to in candidates:
            if len(seen) >= budget:
                break
            if test(candidate):
                items, n = candidate, shrink_to
                break
        else:
            if n >= len(items):
                break
            n = min(2 * n, len(items))
    return items, len(seen)


def failing_checkers(results: dict[str, Any]) -> set[str]:
    checkers = results.get("checkers") or {}
    return {name for name, v in checkers.items() if isinstance(v, dict) and v.get("valid") is False}


@dataclasses.dataclass
class Try:
    episodes: int
    failed: set[str]
    run_dir: str


def shrink_run(run_dir: Path, spec: Any, run: Callable[[Any], tuple[dict[str, Any], str]], budget: int = 16,
               attempts: int = 1, log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Shrink the schedule of the failing run in `run_dir`, whose spec is `spec` (a TestSpec).
    `run(spec)` plays a spec and gives (its results, its run folder). The summary: the original and the
    shrunk episodes, every try, and the shrunk spec's path (None when nothing failed again)."""
    results = json.loads((run_dir / "results.json").read_text())
    wanted = failing_checkers(results)
    entries = yaml.safe_load((run_dir / "schedule.yaml").read_text()) or []
    eps = episodes(entries)
    tries: list[Try] = []

    def fails(chosen: list[tuple[dict[str, Any], ...]]) -> bool:
        candidate = dataclasses.replace(spec, schedule=tuple(schedule_of(chosen)), store=str(run_dir / "shrink"),
                                        test=f"{spec.test}-shrink")
        for attempt in range(attempts):
            got, folder = run(candidate)
            failed = failing_checkers(got) & wanted
            tries.append(Try(len(chosen), failed, folder))
            log(f"  try {len(tries)}: {len(chosen)} of {len(eps)} episodes"
                f"{f' (attempt {attempt + 1})' if attempts > 1 else ''} -> "
                f"{'fails: ' + ', '.join(sorted(failed)) if failed else 'passes'}")
            if failed:
                return True
        return False

    log(f"shrinking {len(eps)} fault episodes of {run_dir} (fails: {', '.join(sorted(wanted))}); "
        f"at most {budget} candidate schedules")
    if not fails(eps):  # the whole schedule again first: a failure that does not come back cannot shrink
        return {"reproduced": False, "episodes": len(eps), "shrunk_episodes": None, "tries": tries, "spec": None}
    minimal, _ = ddmin(eps, fails, budget - 1)
    shrunk = dataclasses.replace(spec, schedule=tuple(schedule_of(minimal)))
    path = run_dir / SHRUNK
    path.write_text(shrunk.to_yaml())
    return {"reproduced": True, "episodes": len(eps), "shrunk_episodes": len(minimal), "tries": tries,
            "spec": path, "schedule": schedule_of(minimal)}
