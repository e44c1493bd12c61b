"""Re-judge stored runs' split-brain verdicts with the dual-serving rule as it is and with a stricter one.

    .venv/bin/python bench/rejudge_dual_serving.py RUN_DIR [RUN_DIR ...]

The stricter rule counts, as served by a leader during an overlap of two leaders, only the operations
called inside the overlap: one called before it may have taken effect before it and only been
answered late. Prints each run's dual-serving count under both rules. Evidence for a change to
checkers/election.py `_served_in` (2026-12-03 stop note): two correct raftkv nightly runs go from 1 to
0, and every membership-bug run keeps its count.
"""

from __future__ import annotations

import sys
from pathlib import Path

import checkers.election as election
from checkers.composite import check_input
from history.events import read_history
from nemesis.registry import fault_facts


def counts(run_dir: Path) -> tuple[int, int]:
    given = check_input(read_history(run_dir / "history.jsonl", check=False), fault_facts=fault_facts)
    current = election._served_in

    def strict(served, node, lo, hi):
        return [op for op in current(served, node, lo, hi) if op.call >= lo]

    out = []
    for rule in (current, strict):
        election._served_in = rule
        try:
            result = election.check(given.events, given.ops, fault_facts=given.fault_facts)
        finally:
            election._served_in = current
        out.append(sum(a["type"] == "dual-serving" for a in result["anomalies"]))
    return out[0], out[1]


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: bench/rejudge_dual_serving.py RUN_DIR [RUN_DIR ...]", file=sys.stderr)
        return 2
    for arg in argv:
        now, strict = counts(Path(arg).resolve())
        print(f"{arg}: dual-serving {now} now, {strict} counting only operations called inside the overlap")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
