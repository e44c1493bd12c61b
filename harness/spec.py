"""Test specs: what one chaos run does, loaded from YAML and CLI flags, validated before anything starts.

A `TestSpec` is a frozen value. `resolve()` fills in what the user left open
(the seed, the test name) so that the spec written to the run folder is enough
to reproduce the run. Every mistake a user can make here raises `SpecError`,
whose message is one line the CLI prints before exiting with code 2.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from checkers.registry import CHECKERS
from history.bounded import load_yaml, read_yaml_text
from history.formats import FormatError
from nemesis.registry import BUILTIN, FAULT_FAMILIES
from nemesis.registry import names as fault_names
from nemesis.schedule import ScheduleError, parse_schedule
from workloads.base import WORKLOADS

ROUTINGS = ("mixed", "leader", "pinned")

# Fault families a schedule can mix: the built-in ones (for help texts); a spec may name any family in
# nemesis.registry. The nemesis and the target say at run time which this host and target can inject.
FAULTS = BUILTIN


class SpecError(Exception):
    """A test spec the user must fix: the message is one line."""


@dataclass(frozen=True)
class TestSpec:
    """Everything that decides what a run does; with the seed, enough to reproduce it."""

    __test__ = False  # not a pytest test class, despite the name

    target: str = "raftkv"
    nodes: int = 5
    workload: str = "register"
    nemesis: tuple[str, ...] = ("partition",)
    time_limit: float = 60.0
    concurrency: int = 10
    rate: float = 200.0
    seed: int | None = None
    bugs: tuple[str, ...] = ()
    nemesis_interval: float = 5.0
    store: str = "store"
    test: str | None = None
    warmup: float = 3.0
    recovery_limit: float = 15.0
    op_timeout: float = 1.0
    ops_per_key: int = 200
    keys: int = 0  # active register keys at once; 0 = derived from concurrency
    # Which node a client asks: "leader" (follow the observed leader after a refusal),
    # "pinned" (always its own node), "mixed" (one pinned client per node, the rest follow).
    routing: str = "mixed"
    options: dict[str, Any] = field(default_factory=dict)  # passed to the target
    checkers: tuple[str, ...] = ()  # checkers to run besides the defaults and the workload's own
    # The election workload (workloads/election.py): the recipe its candidates use (it implies the
    # target), whether the shared resource checks fencing tokens, how many candidates, the lease TTL,
    # and whose nodes the nemesis faults: the candidates (default) or the coordination service's.
    recipe: str | None = None
    fencing: str = "off"
    candidates: int = 3
    ttl: float = 2.0
    nemesis_on: str = "candidates"
    # How the faults are planned: "random" (seeded, fixed before the run: nemesis.schedule), "guided"
    # (chosen step by step from what the run has seen: nemesis.guided), or a list of hand-written
    # entries (nemesis.schedule.parse_schedule) played as given: a run's replay.yaml holds one.
    schedule: Any = "random"
    # Where the nodes run (harness/engines.py): engine names round-robin (--docker-hosts a,b,c), and/or
    # node -> engine (`nodes: {n1: ctx-a, n2: ctx-b}` in a spec file sets both nodes and this). Empty: all
    # on the environment's engine.
    docker_hosts: tuple[str, ...] = ()
    placement: dict[str, str] = field(default_factory=dict)

    def resolve(self) -> TestSpec:
        """The same spec with a concrete seed and test name."""
        seed = self.seed if self.seed is not None else random.SystemRandom().randrange(2**31)
        test = self.test or default_test_name(self)
        return dataclasses.replace(self, seed=seed, test=test)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple):
                v = [dict(e) if isinstance(e, dict) else e for e in v]
            out[f.name.replace("_", "-")] = v
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def active_keys(self) -> int:
        return self.keys or max(2, self.concurrency // 2)


def default_test_name(spec: TestSpec) -> str:
    faults = "+".join(spec.nemesis) if spec.nemesis else "none"
    name = f"{spec.target}-{spec.workload}-{faults}"
    if spec.workload == "election":
        name = f"{spec.recipe}-fencing-{spec.fencing}-{faults}" + ("-on-service" if spec.nemesis_on == "service" else "")
    if spec.bugs:
        name += "-bug-" + "+".join(spec.bugs)
    return name


_FIELDS = {f.name: f for f in dataclasses.fields(TestSpec)}


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _as_list(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        return tuple(p for p in parts if p and p != "none")
    if isinstance(value, (list, tuple)):
        out = []
        for item in value:
            if not isinstance(item, str):
                raise SpecError(f"{name}: expected names, got {item!r}")
            out.extend(_as_list(item, name))
        return tuple(out)
    raise SpecError(f"{name}: expected a name or a list of names, got {value!r}")


def _coerce(name: str, value: Any) -> Any:
    """Check and convert one field's value; the message names the field."""
    if name in ("nemesis", "bugs", "checkers", "docker_hosts"):
        return _as_list(value, name.replace("_", "-"))
    if name == "placement":
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) and v.strip()
                                                  for k, v in value.items()):
            raise SpecError(f"placement: expected a mapping of node ids to engine names, got {value!r}")
        return dict(value)
    if name == "options":
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise SpecError(f"options: expected a mapping, got {value!r}")
        return dict(value)
    if name in ("nodes", "concurrency", "ops_per_key", "keys", "candidates"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{name.replace('_', '-')}: expected a whole number, got {value!r}")
        return value
    if name == "seed":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"seed: expected a whole number, got {value!r}")
        return value
    if name in ("time_limit", "rate", "nemesis_interval", "warmup", "recovery_limit", "op_timeout", "ttl"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{name.replace('_', '-')}: expected a number, got {value!r}")
        if not _finite(value):
            raise SpecError(f"{name.replace('_', '-')}: expected a finite number, got {value!r}")
        return float(value)
    if name == "schedule":
        return _schedule_value(value)
    if name in ("test", "recipe") and value is None:
        return None
    if name == "fencing" and isinstance(value, bool):  # YAML reads a bare on/off as a boolean
        return "on" if value else "off"
    if not isinstance(value, str):
        raise SpecError(f"{name}: expected a name, got {value!r}")
    return value


SCHEDULES = ("random", "guided")


def schedule_argument(value: str | None) -> Any:
    """--schedule: random, guided, or a YAML file holding a list of entries (a run's schedule.yaml)."""
    if value is None or value in SCHEDULES:
        return value
    try:
        data = load_yaml(read_yaml_text(value))
    except FormatError as e:
        raise SpecError(f"--schedule: {e}") from None
    except yaml.YAMLError as e:
        raise SpecError(malformed_yaml(value, e)) from None
    if not isinstance(data, list):
        raise SpecError(f"--schedule {value}: expected random, guided or a YAML list of entries")
    return data


def _schedule_value(value: Any) -> Any:
    if isinstance(value, str):
        if value not in SCHEDULES:
            raise SpecError(f"schedule: expected {' or '.join(SCHEDULES)} or a list of entries, got {value!r}")
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(e, dict) for e in value):
        return tuple(dict(e) for e in value)
    raise SpecError(f"schedule: expected {' or '.join(SCHEDULES)} or a list of entries, got {value!r}")


def spec_from_mapping(data: dict[str, Any], source: str = "spec") -> TestSpec:
    """A spec from a mapping with dashed or underscored keys; unknown keys are errors."""
    kwargs: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = str(raw_key).replace("-", "_")
        if key == "bug":
            key = "bugs"
        if key not in _FIELDS:
            shown = [k.replace("_", "-") for k in _FIELDS]
            raise SpecError(f"{source}: unknown setting {raw_key!r}{_suggest(str(raw_key), shown)}")
        if key == "nodes" and isinstance(value, dict):
            # nodes: {n1: ctx-a, n2: ctx-b, n3: ctx-a}: how many nodes, and the engine of each.
            want = [f"n{i}" for i in range(1, len(value) + 1)]
            if sorted(map(str, value), key=lambda n: (len(n), n)) != want:
                raise SpecError(f"{source}: nodes as a mapping names each node n1..nN once, got "
                                f"{', '.join(map(str, value))}")
            kwargs["placement"] = _coerce("placement", {str(k): v for k, v in value.items()})
            value = len(value)
        kwargs[key] = _coerce(key, value)
    return TestSpec(**kwargs)


def malformed_yaml(path: str | Path, error: yaml.YAMLError) -> str:
    """One line for a YAML syntax error: the file, the line where the parser stopped, the problem."""
    mark = getattr(error, "problem_mark", None)
    where = f":{mark.line + 1}" if mark is not None else ""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"{path}{where}: malformed YAML: {problem}"


def load_spec_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a YAML spec file, or SpecError with the line of a syntax error."""
    try:
        # A regular file of at most 1 MiB, UTF-8, loaded with a bounded safe loader.
        text = read_yaml_text(path)
    except FormatError as e:
        raise SpecError(str(e)) from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as e:
        raise SpecError(malformed_yaml(path, e)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def build_spec(file: str | Path | None, overrides: dict[str, Any]) -> TestSpec:
    """The spec from an optional YAML file with CLI overrides (None = not given) on top."""
    data: dict[str, Any] = dict(load_spec_file(file)) if file else {}
    source = str(file) if file else "spec"
    # Normalise file keys first so a CLI flag replaces a file key however it was spelled.
    merged = {str(k).replace("-", "_"): v for k, v in data.items()}
    merged = {("bugs" if k == "bug" else k): v for k, v in merged.items()}
    for k, v in overrides.items():
        if v is not None:
            merged[k] = v
    return spec_from_mapping(merged, source)


def check_spec(spec: TestSpec, targets: list[str] | None = None, bugs: list[str] | None = None) -> None:
    """Raise SpecError for what is wrong with the spec itself (not yet the host or target)."""
    # A "package.module:Class" target is not listed anywhere: loading it says whether it exists.
    if targets is not None and ":" not in spec.target and spec.target not in targets:
        raise SpecError(
            f"unknown target {spec.target!r}{_suggest(spec.target, targets)}; known: {', '.join(targets)}"
        )
    if spec.workload not in WORKLOADS:
        known = WORKLOADS.names()
        raise SpecError(f"unknown workload {spec.workload!r}{_suggest(spec.workload, known)}; known: {', '.join(known)}")
    for c in spec.checkers:
        if c not in CHECKERS:
            known = CHECKERS.names()
            raise SpecError(f"unknown checker {c!r}{_suggest(c, known)}; known: {', '.join(known)}")
    known = fault_names() if spec.nemesis else []
    for f in spec.nemesis:
        if f not in known and f not in FAULT_FAMILIES:  # "module:attr": a family that is not registered
            raise SpecError(f"unknown nemesis {f!r}{_suggest(f, known)}; known: {', '.join(known)}")
    if len(set(spec.nemesis)) != len(spec.nemesis):
        raise SpecError(f"nemesis lists a fault twice: {','.join(spec.nemesis)}")
    if bugs is not None:
        for b in spec.bugs:
            if b not in bugs:
                known = ", ".join(bugs) if bugs else "none"
                raise SpecError(f"unknown bug {b!r} for target {spec.target}{_suggest(b, bugs)}; known: {known}")
    if spec.routing not in ROUTINGS:
        raise SpecError(f"unknown routing {spec.routing!r}; known: {', '.join(ROUTINGS)}")
    if spec.nodes < 1:
        raise SpecError(f"nodes must be at least 1, got {spec.nodes}")
    if spec.nodes > 9:
        raise SpecError(f"nodes must be at most 9 on one machine, got {spec.nodes}")
    stray = sorted(set(spec.placement) - {f"n{i}" for i in range(1, spec.nodes + 1)})
    if stray:
        raise SpecError(f"placement names node(s) {', '.join(stray)} beyond nodes: {spec.nodes}")
    if (spec.placement or spec.docker_hosts) and spec.workload == "election":
        raise SpecError("an election run (candidates beside a service) runs on one Docker engine: "
                        "drop docker-hosts / the nodes mapping")
    if spec.concurrency < 1:
        raise SpecError(f"concurrency must be at least 1, got {spec.concurrency}")
    if spec.rate <= 0:
        raise SpecError(f"rate must be positive, got {spec.rate:g}")
    if spec.time_limit <= 0:
        raise SpecError(f"time-limit must be positive, got {spec.time_limit:g}")
    if spec.nemesis and spec.nemesis_interval <= 0:
        raise SpecError(f"nemesis-interval must be positive, got {spec.nemesis_interval:g}")
    for name in ("warmup", "recovery_limit"):
        if getattr(spec, name) < 0:
            raise SpecError(f"{name.replace('_', '-')} must not be negative")
    if spec.op_timeout <= 0:
        raise SpecError("op-timeout must be positive")
    if spec.ops_per_key < 1:
        raise SpecError("ops-per-key must be at least 1")
    if spec.keys < 0:
        raise SpecError("keys must not be negative")
    election_problem = _election_problem(spec)
    if election_problem:
        raise SpecError(election_problem)
    if spec.nodes < 2 and "partition" in spec.nemesis:
        raise SpecError("a partition needs at least 2 nodes")
    _check_schedule(spec)
    check_bounds(spec)


def _check_schedule(spec: TestSpec) -> None:
    """A hand-written schedule: every entry well formed and of a family the spec's nemesis mixes."""
    if isinstance(spec.schedule, str):
        return
    try:
        ops = parse_schedule(list(spec.schedule))
    except ScheduleError as e:
        raise SpecError(f"schedule: {e}") from None
    missing = sorted({op.family for op in ops} - set(spec.nemesis))
    if missing:
        raise SpecError(f"schedule: entries of {', '.join(missing)}, which nemesis does not list "
                        f"(nemesis: {','.join(spec.nemesis) or 'none'})")


NEMESIS_ON = ("candidates", "service")


def _election_problem(spec: TestSpec) -> str | None:
    """What is wrong with the election settings (recipe, fencing, candidates, ttl), or None."""
    from targets.candidates.recipes import RECIPES

    if spec.workload != "election":
        if spec.recipe is not None:
            return f"recipe: only the election workload uses a recipe (workload is {spec.workload})"
        if spec.nemesis_on != "candidates":
            return f"nemesis-on: only the election workload has candidates to tell apart (workload is {spec.workload})"
        return None
    if spec.recipe is None:
        return f"the election workload needs --recipe: one of {', '.join(RECIPES)}"
    if spec.recipe not in RECIPES:
        return f"unknown recipe {spec.recipe!r}{_suggest(spec.recipe, RECIPES)}; known: {', '.join(RECIPES)}"
    if RECIPES[spec.recipe].target != spec.target:
        return f"recipe {spec.recipe} runs against target {RECIPES[spec.recipe].target}, not {spec.target}"
    if spec.fencing not in ("on", "off"):
        return f"fencing: expected on or off, got {spec.fencing!r}"
    if not 2 <= spec.candidates <= 6:
        return f"candidates must be between 2 and 6, got {spec.candidates}"
    if not 0.5 <= spec.ttl <= 30:
        return f"ttl must be between 0.5 and 30 seconds, got {spec.ttl:g}"
    if spec.nemesis_on not in NEMESIS_ON:
        return f"nemesis-on: expected {' or '.join(NEMESIS_ON)}, got {spec.nemesis_on!r}"
    return None


def election_target(spec_target: str, recipe: str | None, target_given: bool) -> str:
    """The target of an election run: the recipe's, unless the user named one (then check_spec compares)."""
    from targets.candidates.recipes import RECIPES

    if recipe in RECIPES and not target_given:
        return RECIPES[recipe].target
    return spec_target


# Upper bounds far past any real run on one machine: a value beyond is a
# typo (an extra digit, seconds meant as milliseconds) that would otherwise
# start a run that never ends or starts a billion threads.
BOUNDS = {
    "concurrency": 1000,
    "rate": 100_000.0,
    "time_limit": 7 * 86400.0,
    "nemesis_interval": 86400.0,
    "warmup": 3600.0,
    "recovery_limit": 3600.0,
    "op_timeout": 3600.0,
    "ops_per_key": 10**9,
    "keys": 100_000,
}


def check_bounds(spec: TestSpec) -> None:
    """SpecError for a number that is not finite or past its bound (BOUNDS)."""
    for name, limit in BOUNDS.items():
        value = getattr(spec, name)
        shown = name.replace("_", "-")
        if not _finite(value):
            raise SpecError(f"{shown} must be a finite number, got {value!r}")
        if value > limit:
            raise SpecError(f"{shown} must be at most {limit:g}, got {value if isinstance(value, int) else f'{value:g}'}")
    if spec.seed is not None and not 0 <= spec.seed < 2**63:
        raise SpecError(f"seed must be between 0 and 2**63 - 1, got {spec.seed}")


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False
