"""How long the split-brain checker takes on a one-hour run's observations.

Synthesises what the observer would record over an hour on a 5-node cluster
(a sample per node every 50 ms, a leader change every ~10 s with a short
overlap, and ~200 client ops/s), then times `checkers.election.check`.
Prints figures; asserts nothing. Usage: python bench/election_bench.py [--seconds 3600]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from checkers.election import check  # noqa: E402
from checkers.operation import Operation  # noqa: E402

MS = 1_000_000


def synthesise(seconds: int, nodes: int, seed: int) -> tuple[list[dict], list[Operation]]:
    rng = random.Random(seed)
    ids = [f"n{i + 1}" for i in range(nodes)]
    events: list[dict] = []
    ops: list[Operation] = []
    leader, term, next_change = ids[0], 1, 10_000
    for t in range(0, seconds * 1000, 50):
        if t >= next_change:
            leader, term = rng.choice([n for n in ids if n != leader]), term + 1
            next_change = t + rng.randint(5_000, 15_000)
        for n in ids:
            role = "leader" if n == leader else "follower"
            events.append({"process": "observer", "type": "ok", "f": "status", "node": n,
                           "time": t * MS, "value": {"role": role, "term": term, "leader": leader,
                                                     "commit_index": t}})
        for _ in range(10):
            call = t * MS + rng.randint(0, 50 * MS)
            ops.append(Operation(index=len(ops), process=len(ops) % 20, f="write", value=1,
                                 output=None, call=call, ret=call + 3 * MS, status="ok", key="k",
                                 node=leader))
    return events, ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3600)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    events, ops = synthesise(args.seconds, args.nodes, args.seed)
    # CPU time, not wall time: the machine is shared. The baseline is one
    # pass over the events doing nothing, to show what is the checker's own.
    start = time.process_time()
    sum(1 for e in events if e.get("process") == "observer")
    baseline = time.process_time() - start
    start = time.process_time()
    result = check(events, ops)
    elapsed = time.process_time() - start
    print(f"observations {result['observations']:,}  client ops {len(ops):,}  "
          f"elections {result['timeline']['elections']}  valid {result['valid']}")
    print(f"split-brain check: {elapsed:.3f} s CPU  (baseline: one empty pass over the "
          f"events {baseline:.3f} s)")


if __name__ == "__main__":
    main()
