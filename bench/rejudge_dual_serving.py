"""Re-judge stored runs' dual-serving with the rule as it is and as it was before 2026-12-03.

    .venv/bin/python bench/rejudge_dual_serving.py RUN_DIR [RUN_DIR ...]

The rule now counts, as served by a leader during an overlap of two leaders,
only the acknowledged operations it was asked for inside the overlap. The old
rule counted every acknowledged operation that merely overlapped it, so one
called while the node led alone, committed then and answered late, counted:
two correct raftkv nightly runs were flagged for that. Prints each run's
dual-serving count under both rules: the evidence that the change lost no
real anomaly.
"""

from __future__ import annotations

import sys
from pathlib import Path

from checkers.composite import check_input
from checkers.election import check
from history.events import read_history
from nemesis.registry import fault_facts


def counts(run_dir: Path) -> tuple[int, int]:
    """(dual-serving under the old rule, under the rule now)."""
    given = check_input(read_history(run_dir / "history.jsonl", check=False), fault_facts=fault_facts)
    result = check(given.events, given.ops, fault_facts=given.fault_facts)
    acked = [op for op in given.ops if op.status == "ok" and op.node is not None]

    def overlapped(node: str, lo: int, hi: int) -> bool:
        return any(op.node == node and op.call <= hi and op.ret >= lo for op in acked)

    old = 0
    for overlap in result["overlaps"]:
        a, b = overlap["leaders"]
        lo, hi = overlap["start"], overlap["end"]
        old += a["term"] != b["term"] and overlapped(a["node"], lo, hi) and overlapped(b["node"], lo, hi)
    return old, sum(a["type"] == "dual-serving" for a in result["anomalies"])


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: bench/rejudge_dual_serving.py RUN_DIR [RUN_DIR ...]", file=sys.stderr)
        return 2
    for arg in argv:
        old, now = counts(Path(arg).resolve())
        print(f"{arg}: dual-serving {old} under the old rule, {now} now (only operations called inside the overlap)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
