"""`splitbrain shrink`: cut a failing run's fault schedule down to the few faults that still make it fail."""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

from harness.errors import UsageError

NAME = "shrink"
HELP = "shrink a failing run's faults to a short schedule that still fails, written as a spec"
DESCRIPTION = """\
Take a run that found an anomaly and find a short fault schedule that still
finds it. The run's schedule.yaml (the ops it played) is cut into episodes (a
fault from its start to the op that ended it), and delta debugging (ddmin)
drops episodes while a real run of the same spec and seed with what is left
still fails in one of the checkers that failed the first time. Every
candidate is a full Docker run, kept under RUN/shrink/; the whole schedule is
replayed first, since a failure that does not come back cannot be shrunk.

The result, RUN/shrunk.yaml, is the run's spec with `schedule:` set to the
episodes left: `splitbrain run --spec RUN/shrunk.yaml` replays it. Timing
varies between runs: --attempts K counts a candidate as failing if any of K
runs fails, which shrinks further at K times the cost.

examples:
  splitbrain shrink store/latest
  splitbrain shrink store/raftkv-register-kill-bug-no-persist-vote/latest --budget 8 --attempts 2

exit codes: 0 shrunk (RUN/shrunk.yaml written), 2 usage or infrastructure
error (including a run that was valid: nothing to shrink), 3 the failure did
not come back when the whole schedule was replayed."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN", help="a run folder of a failing run (or STORE/latest)")
    p.add_argument("--budget", type=int, default=16, metavar="N",
                   help="at most this many candidate schedules, each a real run (default 16)")
    p.add_argument("--attempts", type=int, default=1, metavar="K",
                   help="runs per candidate; it fails if any of them fails (default 1)")
    p.add_argument("--quiet", action="store_true", help="no line per try")


def run(args: argparse.Namespace) -> int:
    from harness.shrink import failing_checkers, shrink_run

    run_dir = Path(args.run_dir).resolve()
    if args.budget < 1 or args.attempts < 1:
        raise UsageError("--budget and --attempts must be at least 1")
    for name in ("spec.yaml", "results.json", "schedule.yaml"):
        if not (run_dir / name).is_file():
            raise UsageError(f"{run_dir}: no {name}; give a run folder written by splitbrain run")
    try:
        results = json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"{run_dir / 'results.json'}: unreadable: {e}") from None
    if not isinstance(results, dict) or not failing_checkers(results):
        raise UsageError(f"{run_dir}: no checker failed in this run: nothing to shrink")
    spec, target = _spec_of(run_dir)
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    out = shrink_run(run_dir, spec, lambda s: _play(s, target), budget=args.budget, attempts=args.attempts, log=log)
    runs = len(out["tries"])
    if not out["reproduced"]:
        print(f"splitbrain shrink: the whole schedule ({out['episodes']} episodes) did not fail again in "
              f"{args.attempts} run(s): the failure depends on timing; try --attempts 3")
        return 3
    print(f"splitbrain shrink: {out['episodes']} fault episodes -> {out['shrunk_episodes']} in {runs} runs")
    for e in out["schedule"]:
        print(f"  {e['at']:7.2f}s {e['family']} {e['f']} {json.dumps(e['value']) if e['value'] is not None else ''}"
              .rstrip())
    print(f"  replay: splitbrain run --spec {out['spec']}")
    return 0


def _spec_of(run_dir: Path):
    """The run's spec, resolved against its target, exactly as `splitbrain run --spec` would."""
    from harness.commands.run import resolve_spec
    from harness.spec import SpecError

    try:
        return resolve_spec(argparse.Namespace(spec=str(run_dir / "spec.yaml"), schedule=None))
    except SpecError as e:
        raise UsageError(f"{run_dir / 'spec.yaml'}: {e}") from None


def _play(spec, target) -> tuple[dict, str]:
    from harness.commands.run import execute

    execute(spec, target, quiet=True, out=io.StringIO())
    folder = (Path(spec.store) / "latest").resolve()
    return json.loads((folder / "results.json").read_text()), str(folder)
