"""How long the split-brain checker takes on a one-hour run's observations.

Synthesises the history an hour on a 5-node cluster would record: a status
sample per node every 50 ms, ~200 client ops/s (their invoke and completion
events are in the history too, as `harness.run` passes every event), and a
leader change every ~10 s, half of them after a kill of the old leader (down
for a second) and half with the deposed leader still claiming its old term
for up to 150 ms (an overlap). Then times `checkers.election.check`. Prints
figures; asserts nothing.

Usage: python bench/election_bench.py [--seconds 3600] [--checker FILE]
(`--checker`: time the `check` in FILE instead, e.g. an older version from
`git show REV:checkers/election.py > /tmp/old.py`, to compare on the same data.)
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from checkers.election import check  # noqa: E402
from history.operation import Operation  # noqa: E402
from nemesis.registry import facts_reader  # noqa: E402

MS = 1_000_000


def synthesise(seconds: int, nodes: int, seed: int) -> tuple[list[dict], list[Operation]]:
    rng = random.Random(seed)
    ids = [f"n{i + 1}" for i in range(nodes)]
    events: list[dict] = []
    ops: list[Operation] = []

    def event(**fields) -> None:
        events.append({"index": len(events), **fields})

    leader, term, next_change = ids[0], 1, 10_000
    deposed, deposed_until = None, -1  # an old leader that still believes it leads
    down, down_until = None, -1  # a killed old leader
    for t in range(0, seconds * 1000, 50):
        if t >= next_change:
            if rng.random() < 0.5:
                down, down_until = leader, t + 1000
                event(type="invoke", process="nemesis", f="kill", value=None, time=(t - 200) * MS)
                event(type="info", process="nemesis", f="kill", value=[leader], time=(t - 100) * MS)
            else:
                deposed, deposed_until = (leader, term), t + rng.randint(0, 150)
            leader, term = rng.choice([n for n in ids if n != leader and n != down]), term + 1
            next_change = t + rng.randint(5_000, 15_000)
        for n in ids:
            if n == down and t < down_until:
                event(type="info", process="observer", f="status", node=n, time=t * MS, value=None)
                continue
            if deposed is not None and n == deposed[0] and t <= deposed_until:
                role, said_term, said_leader = "leader", deposed[1], n
            else:
                role = "leader" if n == leader else "follower"
                said_term, said_leader = term, leader
            event(type="ok", process="observer", f="status", node=n, time=t * MS,
                  value={"role": role, "term": said_term, "leader": said_leader, "commit_index": t})
        for _ in range(10):
            # Done within the sample period, so no op straddles a leader change.
            call = t * MS + rng.randint(0, 45 * MS)
            process = len(ops) % 20
            ops.append(Operation(index=len(events), process=process, f="write", value=1,
                                 output=None, call=call, ret=call + 3 * MS, status="ok", key="k",
                                 node=leader, complete_index=len(events) + 1))
            event(type="invoke", process=process, f="write", key="k", value=1, time=call,
                  node=leader)
            event(type="ok", process=process, f="write", key="k", value=1, time=call + 3 * MS,
                  node=leader)
    return events, ops


def load_check(path: str):
    """The `check` function of the checker module at `path`."""
    spec = importlib.util.spec_from_file_location("checker_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3600)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--checker", metavar="FILE", help="time the check in FILE instead")
    args = parser.parse_args()
    # The harness tells the checker what each nemesis op did (synthesised events do not say).
    run_check = load_check(args.checker) if args.checker else functools.partial(check, fault_facts=facts_reader())
    events, ops = synthesise(args.seconds, args.nodes, args.seed)
    # CPU time, not wall time: the machine is shared. The baseline is one
    # pass over the events doing nothing, to show what is the checker's own.
    start = time.process_time()
    sum(1 for e in events if e.get("process") == "observer")
    baseline = time.process_time() - start
    start = time.process_time()
    result = run_check(events, ops)
    elapsed = time.process_time() - start
    print(f"observations {result['observations']:,}  client ops {len(ops):,}  "
          f"events {len(events):,}  elections {result['timeline']['elections']}  "
          f"overlaps {len(result['overlaps'])}  failovers {len(result['timeline']['failovers'])}  "
          f"valid {result['valid']}")
    print(f"split-brain check: {elapsed:.3f} s CPU  (baseline: one empty pass over the "
          f"events {baseline:.3f} s)")
    # What checkers.composite.check_input hands it: observer and nemesis events only.
    start = time.process_time()
    mine = [e for e in events if e.get("process") in ("observer", "nemesis")]
    filtered = time.process_time() - start
    start = time.process_time()
    again = run_check(mine, ops)
    elapsed = time.process_time() - start
    assert again == result  # the client events are not the checker's business
    print(f"split-brain check as the harness calls it (observer and nemesis events only, "
          f"{len(mine):,}): {elapsed:.3f} s CPU, plus {filtered:.3f} s to pick them out")


if __name__ == "__main__":
    main()
