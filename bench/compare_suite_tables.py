"""Compare two suite summaries run by run: an unsharded suite's table against a merge of its shards.

    .venv/bin/python bench/compare_suite_tables.py UNSHARDED.log MERGED.log

Each file is the output of `splitbrain suite` or `splitbrain merge` (its summary table). Prints whether
both name the same runs (test, seed), how many verdicts agree, and each run whose verdict differs.
Issue 18's must-show: the nightly sharded 3 ways and merged gives the same verdicts as unsharded.
"""

from __future__ import annotations

import sys


def table(path: str) -> dict[tuple[str, str], tuple[str, str, str]]:
    """(test, seed) -> (expect, verdict, outcome), from the summary table that starts with 'test '."""
    lines = open(path, encoding="utf-8").read().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("test "))
    rows = {}
    for line in lines[start + 1:]:
        parts = line.split()
        if len(parts) < 5 or not parts[1].isdigit():
            break
        rows[(parts[0], parts[1])] = (parts[2], parts[3], parts[4])
    return rows


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    a, b = table(argv[0]), table(argv[1])
    print(f"first {len(a)} runs, second {len(b)} runs, same runs: {set(a) == set(b)}")
    diff = [k for k in a if k in b and a[k][1] != b[k][1]]
    print(f"same verdict {sum(1 for k in a if k in b) - len(diff)}, different {len(diff)}")
    for k in diff:
        print(f"  {k[0]} {k[1]}: {a[k][1]} ({a[k][2]}) vs {b[k][1]} ({b[k][2]})")
    return 0 if set(a) == set(b) and not diff else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
