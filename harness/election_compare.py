"""`splitbrain bench election --compare`: what a leader change costs, target beside target, on one machine.

Each target gets one cluster and the same trials as a Figure 16 range
(harness.election_bench): Raft targets (raftkv, etcd, a paxoskv's ballots)
the same election-timeout range and heartbeat; a target without one
(ZooKeeper, Redis Sentinel, Patroni) its own failover timing, whose settings
are printed beside its row since they cannot be made equal. Besides the
downtime, each trial may carry what the election cost (peer messages and
fsyncs the survivors made from the kill until a majority acknowledged the new
leader, for targets that export counters) and acknowledged writes/s in a
window before the kill and after the election.

The pure part is here: the rows of the table from the range results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.election_bench import RangeResult, _ms, percentile


@dataclass(frozen=True)
class CompareRow:
    target: str
    timing: str  # the settings this target ran with, printed beside its row
    result: RangeResult


def _median(values: list[float | int | None]) -> float | None:
    got = sorted(v for v in values if v is not None)
    return percentile(got, 50) if got else None


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    if float(v).is_integer() or v >= 10:
        return f"{v:.0f}"
    return f"{v:.1f}"


HEAD = ("target", "min", "median", "p99", "max", "trials", "timeouts", "msgs/elect", "fsyncs/elect",
        "writes/s before", "after", "timing")


def row_cells(row: CompareRow) -> tuple[str, ...]:
    s = row.result.summary()
    t = row.result.trials
    return (row.target, _ms(s.min), _ms(s.median), _ms(s.p99), _ms(s.max), str(s.trials), str(s.timeouts),
            _num(_median([x.messages for x in t])), _num(_median([x.fsyncs for x in t])),
            _num(_median([x.writes_before_per_s for x in t])), _num(_median([x.writes_after_per_s for x in t])),
            row.timing + (f"; stopped early: {row.result.error}" if row.result.error else ""))


def format_compare_table(rows: list[CompareRow], cap_s: float, throughput_s: float) -> str:
    lines = [HEAD] + [row_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEAD))]

    def fmt(cells: tuple[str, ...]) -> str:
        out = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:-1], widths[1:-1], strict=True)]
        return "  ".join(out + [cells[-1]]).rstrip()

    text = [fmt(lines[0]), "  ".join("-" * w for w in widths)]
    text += [fmt(cells) for cells in lines[1:]]
    text.append(f"downtime in ms from SIGKILL of the leader to the first survivor saying it leads in a higher term "
                f"(min, median, p99, max of the trials that elected one; a timeout: none within {cap_s:g} s). "
                f"msgs and fsyncs: medians over trials of what the survivors sent and synced from the kill until a "
                f"majority named the new leader (- where the target exports no such counter). writes/s: median "
                f"acknowledged writes/s of 4 closed-loop writers over {throughput_s:g} s just before the kill "
                f"(all nodes) and just after the election (the survivors), through the target's own client"
                + ("" if throughput_s > 0 else " (not measured: --throughput-s 0)") + ".")
    return "\n".join(text)


def compare_doc(rows: list[CompareRow]) -> list[dict[str, Any]]:
    return [{"target": r.target, "timing": r.timing, **r.result.as_dict()} for r in rows]
