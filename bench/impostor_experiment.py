"""What a target does when an impostor joins its network: one Docker run per (claim, key) case, and what the logs say.

    .venv/bin/python bench/impostor_experiment.py --target etcd [--cases member:wrong,new:stolen,...]
        [--nodes 3] [--hold 15] [--seed 1] [--store /tmp/impostor-experiment]

Each case is one run (register workload) with one hand-written fault: an
impostor (nemesis/impostor.py) started 3 s into the faults and removed
`--hold` seconds later, claiming a member's id (`member`: n2) or a new one
(`new`), with a wrong key, none, or the run's own (`stolen`, never drawn by a
schedule: it shows what a leaked key or, for etcd, a guessed
--initial-cluster-token gives an attacker). For each case it prints the
verdict and the checkers' first sentences, the elections the observer saw,
and the most frequent lines of the rogue's log and of the members' logs
during the run, so that what the target did with the rogue's messages can
be read off (etcd logs one JSON line per event; its "msg" is counted).
A figure-printing experiment, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.pytest_plugin import run_schedule  # noqa: E402
from harness.spec import spec_from_mapping  # noqa: E402

CLAIMS = {"member": "n2", "new": "new"}
DEFAULT_CASES = {"etcd": "member:wrong,member:none,new:stolen,member:stolen",
                 "raftkv": "member:wrong,member:none,new:wrong,member:stolen"}


def messages(text: str) -> collections.Counter:
    """Log lines by what they say: etcd's JSON "msg", else the text after a raftkv line's level."""
    out: collections.Counter = collections.Counter()
    for line in text.splitlines():
        m = re.search(r'"msg":"([^"]*)"', line)
        if m:
            out[m.group(1)] += 1
            continue
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[2] in ("INFO", "WARNING", "ERROR", "CRITICAL"):
            out[re.sub(r"\d+", "N", parts[3])] += 1
    return out


def top(counter: collections.Counter, n: int) -> str:
    return "; ".join(f"{c}x {m[:110]}" for m, c in counter.most_common(n)) or "(nothing)"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="etcd")
    p.add_argument("--cases", help="comma-separated CLAIM:KEY, CLAIM member|new, KEY wrong|none|stolen")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--hold", type=float, default=15.0, help="seconds the impostor runs")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--store", default="/tmp/impostor-experiment")
    args = p.parse_args()
    cases = [c.split(":") for c in (args.cases or DEFAULT_CASES.get(args.target, "member:wrong")).split(",")]
    print(f"impostor experiment: target {args.target}, {args.nodes} nodes, impostor from 3 s for {args.hold:g} s; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    for claim, key in cases:
        spec = spec_from_mapping({"target": args.target, "nodes": args.nodes, "time_limit": args.hold + 6,
                                  "seed": args.seed, "store": args.store, "test": f"impostor-{claim}-{key}"},
                                 "impostor experiment").resolve()
        schedule = [{"at": 3.0, "fault": "impostor", "claim": CLAIMS[claim], "key": key, "duration": args.hold}]
        result = run_schedule(dataclasses.replace(spec), schedule)
        res, run = result.results, result.run_dir
        timeline = (res.get("checkers", {}).get("split-brain", {}).get("details") or
                    res.get("checkers", {}).get("split-brain", {})).get("timeline", {})
        started = next((json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()
                        if '"start-impostor"' in line and '"invoke"' not in line), {})
        print(f"\n== claim {claim} ({(started.get('value') or {}).get('claim')}), key {key}: verdict {res.get('valid')}"
              f"  ({run})")
        for s in result.sentences[:3]:
            print(f"   anomaly: {s[:300]}")
        if res.get("run", {}).get("infra_error"):
            print(f"   infrastructure error: {res['run']['infra_error'][:300]}")
        print(f"   elections seen: {timeline.get('elections')}, leaders per term: {timeline.get('leaders_per_term')}")
        for log in sorted((run / "logs").glob("rogue-*.log")):
            print(f"   rogue log: {top(messages(log.read_text(errors='replace')), 5)}")
        for log in sorted((run / "logs").glob("n*.log")):
            print(f"   {log.stem}: {top(messages(log.read_text(errors='replace')), 5)}")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
