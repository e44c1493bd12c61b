"""Leader failover measured like Figure 16 of the Raft paper: kill the leader, time until the others have a new one.

For each election-timeout range the bench starts a fresh cluster of the
target with that range, then repeats a trial:

1. wait for a stable leader: every node answers, all agree on (term, leader),
   the leader says it leads, commit indexes are equal (the restarted node has
   caught up), and this has held for one election timeout;
2. wait a random delay, uniform in [0, heartbeat): we cannot see the leader's
   heartbeat timer from outside, but our start is not tied to it, and the
   added uniform delay spreads the kill over the whole heartbeat interval even
   if our loop happened to run in step with it (the paper kills "uniformly
   randomly within its heartbeat interval");
3. SIGKILL the leader's process (from the host by its pid when Docker runs
   here, so the kill time is exact; otherwise through Docker);
4. poll the status probe of every surviving node every `poll_ms`, each node on
   its own loop so a slow one does not hold up the others. The downtime ends
   at the first answer in which a survivor says it is leader in a higher term
   (the paper's "elect a new leader"); we also record when a majority of the
   whole cluster acknowledged that leader. A trial with no new leader within
   the cap is a timeout, kept in the results and the table;
5. restart the killed node and let it catch up (step 1 of the next trial).

The pure parts (ranges, statistics, the table, the SVG CDF plots) are at the
top and are unit-tested; the measuring loop only needs a small cluster
interface (`BenchCluster`), so it is tested with a fake one as well.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

# The ranges of Figure 16 (top: 150 ms lower bound with growing randomness;
# bottom: ranges of growing scale with the same relative randomness).
DEFAULT_RANGES = "150-150,150-151,150-155,150-175,150-200,150-300,12-24,25-50,50-100,100-200"

# What Section 9.3 of the paper says in its text (the figure shows the rest).
# LogCabin, five servers, gigabit Ethernet, 1000 trials per line (100 for 150-150),
# heartbeat half the lower bound, the leader crashed uniformly within its heartbeat interval.
PAPER = {
    "150-150": "> 10 s (split votes), 100 trials",
    "150-155": "median 287 ms",
    "150-200": "worst of 1000: 513 ms",
    "12-24": "mean 35 ms, worst 152 ms",
    "150-300": "~90 to ~600 ms",
}


class RangeError(ValueError):
    """A malformed election-timeout range list (a user's mistake: one line)."""


# A target without a Raft election timeout (ZooKeeper, a failover manager) is measured with its
# own timing: one "range" named own, whose settings are only what --option gives.
OWN = "own"
OWN_KILL_SPREAD_MS = 100  # the kill delay is uniform in [0, this): no heartbeat is known to spread over
OWN_SETTLE_MS = 1000  # how long a leader must have held before a kill, for lack of a timeout to wait


@dataclass(frozen=True)
class TimeoutRange:
    lo: int  # ms (0 for the target's own timing)
    hi: int  # ms
    own: bool = False  # the target's own failover timing, not a Raft election-timeout range

    @property
    def label(self) -> str:
        return OWN if self.own else f"{self.lo}-{self.hi}"

    def heartbeat(self) -> int:
        """The paper's choice: half the lower bound (ms), never below 1 ms; always below lo.
        For the target's own timing: the spread of the kill delay."""
        return OWN_KILL_SPREAD_MS if self.own else max(1, self.lo // 2)

    def settle_ms(self) -> int:
        """How long a leader must have held, all nodes agreeing, before it is killed."""
        return OWN_SETTLE_MS if self.own else max(self.hi, 20)


OWN_TIMING = TimeoutRange(0, 0, own=True)


def parse_ranges(text: str) -> list[TimeoutRange]:
    """"150-300,12-24" -> ranges in the given order; RangeError naming the bad item."""
    out: list[TimeoutRange] = []
    items = [i.strip() for i in (text or "").split(",")]
    if not any(items):
        raise RangeError("--ranges: no range given (expected LO-HI in ms, comma-separated, e.g. 150-300,12-24, "
                         "or own for the target's own timing)")
    for item in items:
        if item == OWN:
            if OWN_TIMING in out:
                raise RangeError(f"--ranges: {item!r} is given twice")
            out.append(OWN_TIMING)
            continue
        lo, sep, hi = item.partition("-")
        if not sep or not lo.strip().isdigit() or not hi.strip().isdigit():
            raise RangeError(f"--ranges: expected LO-HI in whole ms (e.g. 150-300) or own, got {item!r}")
        r = TimeoutRange(int(lo), int(hi))
        if r.lo < 2 or r.hi < r.lo:
            raise RangeError(f"--ranges: {item!r} needs 2 <= LO <= HI (the heartbeat must fit below LO)")
        if r in out:
            raise RangeError(f"--ranges: {item!r} is given twice")
        out.append(r)
    return out


# ---- statistics ---------------------------------------------------------------


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in (0, 100]) of an ascending list: a value that was measured, never interpolated."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True)
class Summary:
    """Downtime statistics of one range, in ms; None where no trial elected a leader."""

    trials: int  # trials run (timeouts included)
    timeouts: int
    min: float | None
    median: float | None
    mean: float | None
    p90: float | None
    p99: float | None
    max: float | None


def summarize(downtimes_ms: list[float | None]) -> Summary:
    """Statistics over the elected trials; a None (timeout) counts in `trials` and `timeouts`, not in the figures."""
    done = sorted(d for d in downtimes_ms if d is not None)
    timeouts = len(downtimes_ms) - len(done)
    if not done:
        return Summary(len(downtimes_ms), timeouts, None, None, None, None, None, None)
    return Summary(
        trials=len(downtimes_ms),
        timeouts=timeouts,
        min=done[0],
        median=percentile(done, 50),
        mean=sum(done) / len(done),
        p90=percentile(done, 90),
        p99=percentile(done, 99),
        max=done[-1],
    )


def cdf_points(downtimes_ms: list[float | None]) -> list[tuple[float, float]]:
    """(downtime, share of all trials with at most that downtime), ascending. Timeouts are in the
    denominator and never reached, so the curve of a range with timeouts stops below 1."""
    n = len(downtimes_ms)
    done = sorted(d for d in downtimes_ms if d is not None)
    return [(d, (i + 1) / n) for i, d in enumerate(done)]


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v / 1000:.2f}s" if v >= 10_000 else f"{v:.0f}"


def format_table(rows: list[tuple[TimeoutRange, int, Summary]], cap_s: float) -> str:
    """The printed table: one row per range (range, heartbeat, downtime statistics in ms, trials,
    timeouts) and the paper's figure for that range beside it."""
    head = ("range ms", "hb", "min", "median", "mean", "p90", "p99", "max", "trials", "timeouts", "paper (Fig. 16, LogCabin)")
    lines = [head]
    for r, hb, s in rows:
        lines.append((r.label, str(hb), _ms(s.min), _ms(s.median), _ms(s.mean), _ms(s.p90), _ms(s.p99), _ms(s.max),
                      str(s.trials), str(s.timeouts), PAPER.get(r.label, "")))
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]

    def fmt(row):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:-1], widths[1:-1], strict=True)]
        return "  ".join(cells + [row[-1]]).rstrip()

    out = [fmt(lines[0]), "  ".join("-" * w for w in widths[:-1]) + "  " + "-" * len(head[-1])]
    out += [fmt(row) for row in lines[1:]]
    out.append(f"downtime in ms from SIGKILL of the leader to the first survivor saying it leads in a higher term; "
               f"a timeout is a trial with no new leader within {cap_s:g} s (left out of the figures, counted here).")
    return "\n".join(out)


# ---- SVG CDF plots --------------------------------------------------------------

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
            "#bcbd22")


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _log_ticks(lo: float, hi: float) -> list[float]:
    ticks = []
    decade = 10 ** math.floor(math.log10(lo))
    while decade <= hi:
        for m in (1, 2, 5):
            v = decade * m
            if lo <= v <= hi:
                ticks.append(v)
        decade *= 10
    return ticks


def render_cdf_svg(series: list[tuple[str, list[float | None]]], title: str, ranges: bool = True) -> str:
    """A CDF plot like Figure 16: x = downtime in ms on a log axis, y = cumulative percent of trials.
    One step line per (label, downtimes) pair; timeouts keep a line below 100% and are named in the legend.
    ranges: the labels are election-timeout ranges (the legend says "ms"); else names (targets compared)."""
    width, height = 840, 420
    left, right, top, bottom = 70, 260, 40, 50
    pw, ph = width - left - right, height - top - bottom
    values = [d for _, ds in series for d in ds if d is not None and d > 0]
    x_lo = 10 ** math.floor(math.log10(min(values))) if values else 10.0
    x_hi = 10 ** math.ceil(math.log10(max(values))) if values else 1000.0
    if x_hi <= x_lo:
        x_hi = x_lo * 10
    span = math.log10(x_hi) - math.log10(x_lo)

    def x(v: float) -> float:
        v = min(max(v, x_lo), x_hi)
        return left + (math.log10(v) - math.log10(x_lo)) / span * pw

    def y(share: float) -> float:
        return top + (1 - share) * ph

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left + pw / 2:.1f}" y="22" text-anchor="middle" font-size="14">{_esc(title)}</text>',
    ]
    for t in _log_ticks(x_lo, x_hi):
        xp = x(t)
        parts.append(f'<line x1="{xp:.1f}" y1="{top}" x2="{xp:.1f}" y2="{top + ph}" stroke="#ddd"/>')
        label = f"{t / 1000:g}s" if t >= 1000 else f"{t:g}"
        parts.append(f'<text x="{xp:.1f}" y="{top + ph + 16}" text-anchor="middle">{label}</text>')
    for pct in range(0, 101, 20):
        yp = y(pct / 100)
        parts.append(f'<line x1="{left}" y1="{yp:.1f}" x2="{left + pw}" y2="{yp:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{yp + 4:.1f}" text-anchor="end">{pct}%</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="black"/>')
    parts.append(f'<text x="{left + pw / 2:.1f}" y="{height - 12}" text-anchor="middle">'
                 f'time without leader (ms, log scale)</text>')
    parts.append(f'<text x="16" y="{top + ph / 2:.1f}" text-anchor="middle" '
                 f'transform="rotate(-90 16 {top + ph / 2:.1f})">cumulative percent of trials</text>')
    for i, (label, downtimes) in enumerate(series):
        colour = _COLOURS[i % len(_COLOURS)]
        pts = cdf_points(downtimes)
        if pts:
            path = [(x(pts[0][0]), y(0.0))]
            prev = 0.0
            for v, share in pts:
                path.append((x(v), y(prev)))
                path.append((x(v), y(share)))
                prev = share
            d = " ".join(f"{px:.1f},{py:.1f}" for px, py in path)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{d}"/>')
        timeouts = sum(1 for v in downtimes if v is None)
        ly = top + 14 + i * 18
        parts.append(f'<line x1="{left + pw + 12}" y1="{ly - 4}" x2="{left + pw + 32}" y2="{ly - 4}" '
                     f'stroke="{colour}" stroke-width="2"/>')
        legend = f"{label}{'' if label == OWN or not ranges else ' ms'} (n={len(downtimes)}" + (f", {timeouts} timeouts)" if timeouts else ")")
        parts.append(f'<text x="{left + pw + 36}" y="{ly}">{_esc(legend)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# ---- measuring -------------------------------------------------------------------------


class BenchCluster(Protocol):
    """What the measuring loop needs of a running cluster."""

    node_ids: list[str]

    async def probe(self, node: str, timeout: float) -> dict[str, Any] | None: ...

    def kill(self, node: str) -> float:
        """SIGKILL the node's process now; the time.monotonic() at which the signal went out."""
        ...

    def start(self, node: str) -> None:
        """Start a killed node again (returns once its process runs)."""
        ...

    def lost(self, nodes: list[str]) -> list[str]:
        """Those of `nodes` that no longer run although we did not kill them."""
        ...


@dataclass(frozen=True)
class Trial:
    index: int
    old_leader: str
    old_term: int
    kill_offset_ms: float  # the random delay before the kill, in [0, heartbeat)
    downtime_ms: float | None  # None: no new leader within the cap (a timeout)
    acknowledged_ms: float | None  # when a majority of the cluster reported the new leader
    new_leader: str | None
    new_term: int | None
    polls: int  # status answers read while waiting
    # Extras of a comparing bench (None when not measured, or the target cannot report them):
    writes_before_per_s: float | None = None  # acknowledged writes/s in a window just before the kill
    writes_after_per_s: float | None = None  # the same just after a majority acknowledged the new leader
    messages: int | None = None  # peer messages the survivors sent from the kill to that acknowledgement
    fsyncs: int | None = None  # fsyncs the survivors did in the same interval


def counter_delta(before: dict[str, dict[str, int] | None] | None,
                  after: dict[str, dict[str, int] | None] | None) -> dict[str, int]:
    """Per counter, what all the nodes added between two readings; a counter any node did not report
    both times (or that went down: a restart) is left out rather than guessed."""
    if not before or not after:
        return {}
    names = set.intersection(*(set((before.get(n) or {}).keys()) & set((after.get(n) or {}).keys())
                               for n in before))
    out: dict[str, int] = {}
    for name in sorted(names):
        deltas = [after[n][name] - before[n][name] for n in before]
        if all(d >= 0 for d in deltas):
            out[name] = sum(deltas)
    return out


class StabilityError(Exception):
    """The cluster did not settle on one leader in time: the range cannot go on."""


class ClusterLost(Exception):
    """Nodes of the cluster are gone or stopped behind our back (removed by someone else): the trial
    that saw it is not a measurement."""


@dataclass
class BenchSettings:
    trials: int = 50
    cap_s: float = 15.0
    poll_ms: float = 5.0
    probe_timeout_s: float = 0.25
    settle_timeout_s: float = 60.0
    max_timeouts: int = 5
    range_time_limit_s: float | None = None  # stop starting trials in a range after this long
    range_attempts: int = 3  # fresh clusters a range may use when one fails or vanishes
    throughput_s: float = 0.0  # >0: measure write throughput for this long before each kill and after each election


def _stable_view(statuses: dict[str, dict | None], nodes: list[str]) -> tuple[str, int] | None:
    """(leader, term) when every node answers, all agree on term and leader, the leader says it
    leads, and commit indexes (when reported) are equal; None otherwise."""
    answers = [statuses.get(n) for n in nodes]
    if any(a is None for a in answers):
        return None
    terms = {a.get("term") for a in answers}
    leaders = {a.get("leader") for a in answers}
    if len(terms) != 1 or len(leaders) != 1:
        return None
    leader, term = leaders.pop(), terms.pop()
    if leader not in statuses or (statuses[leader] or {}).get("role") != "leader":
        return None
    commits = {a.get("commit_index") for a in answers} - {None}
    if len(commits) > 1:
        return None
    return leader, int(term)


class ElectionBench:
    """Runs trials against one running cluster; see the module docstring for what a trial is."""

    def __init__(self, cluster: BenchCluster, heartbeat_ms: int, settle_ms: float, rng: random.Random,
                 settings: BenchSettings, on_trial: Callable[[Trial], None] | None = None,
                 log: Callable[[str], None] | None = None):
        self.cluster = cluster
        self.heartbeat_ms = heartbeat_ms
        self.settle_ms = settle_ms
        self.rng = rng
        self.s = settings
        self.on_trial = on_trial or (lambda t: None)
        self.log = log or (lambda m: None)
        self.majority = len(cluster.node_ids) // 2 + 1

    async def _probe_all(self, nodes: list[str]) -> dict[str, dict | None]:
        answers = await asyncio.gather(*(self.cluster.probe(n, self.s.probe_timeout_s) for n in nodes))
        return dict(zip(nodes, answers, strict=True))

    async def wait_stable(self) -> tuple[str, int]:
        """(leader, term) once the whole cluster has agreed on it for settle_ms; StabilityError after settle_timeout."""
        nodes = list(self.cluster.node_ids)
        deadline = time.monotonic() + self.s.settle_timeout_s
        since: float | None = None
        view: tuple[str, int] | None = None
        last: dict[str, dict | None] = {}
        while time.monotonic() < deadline:
            last = await self._probe_all(nodes)
            now_view = _stable_view(last, nodes)
            now = time.monotonic()
            if now_view is None or now_view != view:
                view, since = now_view, now
            elif since is not None and (now - since) * 1000 >= self.settle_ms:
                return view
            await asyncio.sleep(max(0.01, self.s.poll_ms / 1000 * 4))
        seen = ", ".join(f"{n}: {(a or {}).get('role', 'down')}/{(a or {}).get('term', '-')}" for n, a in last.items())
        raise StabilityError(f"no stable leader within {self.s.settle_timeout_s:g}s ({seen})")

    async def measure(self, survivors: list[str], old_term: int, killed_at: float) -> tuple[
            float | None, float | None, str | None, int | None, int]:
        """Poll the survivors until a majority acknowledges a leader of a higher term, or the cap.
        (downtime ms, acknowledged ms, new leader, new term, answers read)."""
        latest: dict[str, dict | None] = {n: None for n in survivors}
        found: dict[str, Any] = {"claim": None, "ack": None, "leader": None, "term": None, "polls": 0}
        done = asyncio.Event()
        cap_at = killed_at + self.s.cap_s
        interval = self.s.poll_ms / 1000

        def acknowledged(leader: str, term: int) -> bool:
            votes = sum(1 for a in latest.values() if a and a.get("term") == term
                        and (a.get("leader") == leader or (a.get("role") == "leader" and a.get("id", leader) == leader)))
            return votes >= self.majority

        async def poll(node: str) -> None:
            next_at = time.monotonic()
            while not done.is_set() and time.monotonic() < cap_at:
                answer = await self.cluster.probe(node, self.s.probe_timeout_s)
                got = time.monotonic()
                if answer is not None:
                    found["polls"] += 1
                    latest[node] = answer
                    term = answer.get("term")
                    if (answer.get("role") == "leader" and isinstance(term, int) and term > old_term
                            and (found["term"] is None or term >= found["term"])):
                        if found["claim"] is None:
                            found["claim"] = got
                        found["leader"], found["term"] = node, term
                    if found["term"] is not None and acknowledged(found["leader"], found["term"]):
                        found["ack"] = got
                        done.set()
                        return
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

        await asyncio.gather(*(poll(n) for n in survivors))
        claim, ack = found["claim"], found["ack"]
        return (None if claim is None else (claim - killed_at) * 1000,
                None if ack is None else (ack - killed_at) * 1000,
                found["leader"], found["term"], found["polls"])

    async def _write_rate(self, nodes: list[str]) -> float | None:
        """Acknowledged writes/s over throughput_s seconds, when asked for and the cluster can write."""
        rate = getattr(self.cluster, "write_rate", None)
        if self.s.throughput_s <= 0 or rate is None:
            return None
        return await rate(nodes, self.s.throughput_s)

    async def _counters(self, nodes: list[str]) -> dict[str, dict[str, int]] | None:
        """Each node's election counters ({"messages": n, "fsyncs": n}), when the target reports them."""
        read = getattr(self.cluster, "counters", None)
        if read is None:
            return None
        answers = await asyncio.gather(*(read(n, self.s.probe_timeout_s * 4) for n in nodes))
        return dict(zip(nodes, answers, strict=True))

    async def run_trials(self, count: int, first_index: int = 1) -> list[Trial]:
        """Up to `count` trials (fewer after max_timeouts timeouts); StabilityError if the cluster will not settle."""
        trials: list[Trial] = []
        timeouts = 0
        started = time.monotonic()
        for i in range(first_index, first_index + count):
            limit = self.s.range_time_limit_s
            if limit is not None and trials and time.monotonic() - started >= limit:
                self.log(f"stopping this range at its time limit of {limit:g}s after {len(trials)} trials")
                break
            leader, term = await self.wait_stable()
            survivors = [n for n in self.cluster.node_ids if n != leader]
            before = await self._write_rate(list(self.cluster.node_ids))
            counted = await self._counters(survivors)
            offset = self.rng.uniform(0, self.heartbeat_ms)
            await asyncio.sleep(offset / 1000)
            killed_at = await asyncio.to_thread(self.cluster.kill, leader)
            down, ack, new_leader, new_term, polls = await self.measure(survivors, term, killed_at)
            spent = counter_delta(counted, await self._counters(survivors)) if ack is not None else {}
            after = await self._write_rate(survivors) if ack is not None else None
            trial = Trial(i, leader, term, round(offset, 3), None if down is None else round(down, 3),
                          None if ack is None else round(ack, 3), new_leader, new_term, polls,
                          before, after, spent.get("messages"), spent.get("fsyncs"))
            if down is None:
                lost = await asyncio.to_thread(self.cluster.lost, survivors)
                if lost:
                    raise ClusterLost(f"nodes {', '.join(lost)} are no longer running (removed by someone else?); "
                                      f"trial {i} discarded")
            trials.append(trial)
            self.on_trial(trial)
            await asyncio.to_thread(self.cluster.start, leader)
            if down is None:
                timeouts += 1
                if timeouts >= self.s.max_timeouts and i < first_index + count - 1:
                    self.log(f"stopping this range after {timeouts} timeouts")
                    break
        return trials


# ---- the Docker side --------------------------------------------------------------

THROUGHPUT_WRITERS = 4  # closed-loop writers of the throughput windows


async def closed_loop_write_rate(client, nodes: list[str], seconds: float,
                                 writers: int = THROUGHPUT_WRITERS) -> float:
    """Acknowledged writes per second: `writers` loops, each writing its own key on the next node in
    turn, each waiting for an answer before the next write, for `seconds`. The client is closed after."""
    stop_at = time.monotonic() + seconds
    acked = [0]

    async def writer(w: int) -> None:
        i = w
        while time.monotonic() < stop_at:
            out = await client.invoke(nodes[i % len(nodes)], {"f": "write", "key": f"bench{w}", "value": i,
                                                              "client": w})
            i += 1
            if out.get("type") == "ok":
                acked[0] += 1
            else:
                await asyncio.sleep(0.01)  # a refusal comes back at once: do not spin on it

    started = time.monotonic()
    try:
        await asyncio.gather(*(writer(w) for w in range(writers)))
    finally:
        await client.close()
    return round(acked[0] / max(1e-9, time.monotonic() - started), 1)



class DockerBenchCluster:
    """BenchCluster over a running harness.cluster.DockerCluster: probes through the target's status
    probe; kills by host pid when the node's process is visible here (exact kill time), else via Docker."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.node_ids = list(cluster.node_ids)
        self.kills_by_pid = 0
        self.kills_by_docker = 0

    async def probe(self, node: str, timeout: float) -> dict[str, Any] | None:
        return await self.cluster.target.status_probe(self.cluster.addresses[node], timeout)

    def _host_pid(self, node: str) -> int | None:
        c = self.cluster.container(node)
        c.reload()
        pid = (c.attrs.get("State") or {}).get("Pid") or 0
        if pid <= 0:
            return None
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                if c.id not in f.read():
                    return None  # not this container's process (a daemon in another pid namespace)
        except OSError:
            return None
        return pid

    def kill(self, node: str) -> float:
        pid = self._host_pid(node)  # looked up before the clock starts
        if pid is not None:
            try:
                at = time.monotonic()
                os.kill(pid, signal.SIGKILL)
                self.kills_by_pid += 1
                return at
            except (PermissionError, ProcessLookupError):
                pass
        # Through Docker the signal goes out somewhere inside the API call: timing from its
        # start overstates the downtime by at most the call's latency.
        at = time.monotonic()
        self.kills_by_docker += 1
        self.cluster.kill(node)
        return at

    def start(self, node: str) -> None:
        self.cluster.container(node).wait(timeout=10)  # Docker must have seen it exit before it can start it
        self.cluster.start(node)

    async def write_rate(self, nodes: list[str], seconds: float) -> float:
        """Acknowledged writes/s of a few closed-loop writers over `seconds`, sent round-robin to `nodes`
        through the target's own workload client (which finds the leader or primary as it always does)."""
        return await closed_loop_write_rate(self.cluster.target.client(self.cluster.addresses, timeout=1.0),
                                            nodes, seconds)

    async def counters(self, node: str, timeout: float) -> dict[str, int] | None:
        read = getattr(self.cluster.target, "election_counters", None)
        if read is None:
            return None
        return await read(self.cluster.addresses[node], timeout)

    def lost(self, nodes: list[str]) -> list[str]:
        states = self.cluster.states()
        return [n for n in nodes if states.get(n) != "running"]


@dataclass
class RangeResult:
    range: TimeoutRange
    heartbeat_ms: int
    tick_ms: int | None
    trials: list[Trial] = field(default_factory=list)
    error: str | None = None  # why the range stopped early (cluster would not come up or settle)
    stopped_early: str | None = None
    up_s: float | None = None
    retries: list[str] = field(default_factory=list)  # why each failed cluster of this range failed
    image: str | None = None  # what the nodes ran (the target's image tag, when the handle says)

    @property
    def downtimes(self) -> list[float | None]:
        return [t.downtime_ms for t in self.trials]

    def summary(self) -> Summary:
        return summarize(self.downtimes)

    def as_dict(self) -> dict[str, Any]:
        acks = summarize([t.acknowledged_ms for t in self.trials])
        return {
            "range": self.range.label, "lo_ms": self.range.lo, "hi_ms": self.range.hi,
            "heartbeat_ms": self.heartbeat_ms, "tick_ms": self.tick_ms,
            "summary": asdict(self.summary()), "acknowledged_summary": asdict(acks),
            "paper": PAPER.get(self.range.label), "error": self.error, "stopped_early": self.stopped_early,
            "cluster_up_s": self.up_s, "cluster_failures": list(self.retries), "image": self.image,
            "trials": [asdict(t) for t in self.trials],
        }


# ---- a whole bench: one fresh cluster per range ------------------------------------------


@dataclass(frozen=True)
class BenchPlan:
    target: str
    nodes: int
    ranges: tuple[TimeoutRange, ...]
    seed: int
    tick_ms: int | None  # passed to the target as setting "tick" (None: the target's default)
    heartbeat_ms: int | None  # None: half of each range's lower bound, as in the paper
    settings: BenchSettings
    options: tuple[tuple[str, Any], ...] = ()  # --option KEY=VALUE: target settings for every range

    def heartbeat_for(self, r: TimeoutRange) -> int:
        return self.heartbeat_ms if self.heartbeat_ms is not None else r.heartbeat()

    def target_settings(self, r: TimeoutRange) -> dict[str, Any]:
        """What the target is started with for range r (TargetOptions.settings): the range's timing
        (none for the target's own) and the --option settings."""
        s: dict[str, Any] = {}
        if not r.own:
            s = {"election_timeout": r.label, "heartbeat": self.heartbeat_for(r)}
            if self.tick_ms is not None:
                s["tick"] = self.tick_ms
        return {**s, **dict(self.options)}


def run_ranges(plan: BenchPlan, make_cluster: Callable[[TimeoutRange], tuple[Any, BenchCluster]],
               on_range_done: Callable[[list[RangeResult]], None], log: Callable[[str], None],
               results: list[RangeResult] | None = None) -> list[RangeResult]:
    """Every range of the plan in turn on a fresh cluster: `make_cluster(range)` -> (handle with up() and
    teardown(), the bench cluster over it), nothing started yet. The handle is torn down after each range
    whatever happens, with SIGINT and SIGTERM ignored meanwhile; KeyboardInterrupt (Ctrl-C, or SIGTERM
    turned into it) propagates after that. A cluster that will not come up or settle ends its range (the
    error is kept) and the bench goes on with the next. Results are appended to `results` as they come,
    so a caller that passes its own list keeps them when interrupted."""
    results = [] if results is None else results
    for r in plan.ranges:
        hb = plan.heartbeat_for(r)
        res = RangeResult(r, hb, None if r.own else plan.tick_ms)
        results.append(res)
        rng = random.Random(f"{plan.seed}:{r.label}")
        n = plan.settings.trials

        def shown(t: Trial, r=r, n=n, res=res) -> None:
            res.trials.append(t)
            if t.downtime_ms is None:
                what = f"NO new leader within {plan.settings.cap_s:g}s (timeout)"
            else:
                ack = "" if t.acknowledged_ms is None else f", majority {t.acknowledged_ms:.0f} ms"
                what = f"new leader {t.new_leader} (term {t.new_term}) after {t.downtime_ms:.0f} ms{ack}"
            log(f"  [{r.label}{'' if r.own else ' ms'}] trial {t.index}/{n}: killed {t.old_leader} (term {t.old_term}, "
                f"+{t.kill_offset_ms:.1f} ms into hb) -> {what}")

        if r.own:
            given = ", ".join(f"{k}={v}" for k, v in plan.options) or "its defaults"
            log(f"the target's own timing ({given}; kills spread over {hb} ms): starting {plan.nodes} nodes")
        else:
            log(f"range {r.label} ms (heartbeat {hb} ms"
                + (f", tick {plan.tick_ms} ms" if plan.tick_ms is not None else "") + f"): starting {plan.nodes} nodes")
        range_started = time.monotonic()
        for attempt in range(1, plan.settings.range_attempts + 1):
            left = n - len(res.trials)
            settings = plan.settings
            if settings.range_time_limit_s is not None:
                settings = replace(settings, range_time_limit_s=max(
                    0.001, settings.range_time_limit_s - (time.monotonic() - range_started)))
            handle = None
            try:
                started = time.monotonic()
                handle, cluster = make_cluster(r)
                handle.up()
                res.up_s = round(time.monotonic() - started, 2)
                res.image = getattr(handle, "image", None)
                bench = ElectionBench(cluster, hb, settle_ms=r.settle_ms(), rng=rng, settings=settings,
                                      on_trial=shown, log=log)
                asyncio.run(bench.run_trials(left, first_index=len(res.trials) + 1))
                res.error = None
                break
            except Exception as e:  # the cluster failed (or was removed under us): a fresh one, or give up
                if isinstance(e, StabilityError | ClusterLost) or type(e).__name__ == "ClusterError":
                    why = str(e)
                else:
                    why = f"{type(e).__name__}: {e}"
                why = " ".join(why.split())[:500]
                res.error = why
                res.retries.append(why)
                again = attempt < plan.settings.range_attempts
                log(f"  [{r.label}{'' if r.own else ' ms'}] cluster failed: {why}" + ("; starting a fresh one" if again else "; range stopped"))
            finally:
                if handle is not None:
                    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
                    try:
                        handle.teardown()
                    finally:
                        for s, h in old.items():
                            signal.signal(s, h)
                on_range_done(results)
        if len(res.trials) < n and res.error is None:
            timeouts = sum(1 for t in res.trials if t.downtime_ms is None)
            res.stopped_early = (f"stopped after {timeouts} timeouts" if timeouts >= plan.settings.max_timeouts
                                 else f"stopped at the range time limit of {plan.settings.range_time_limit_s:g}s "
                                      f"after {len(res.trials)} of {n} trials")
        on_range_done(results)
    return results


def results_from_json(doc: dict[str, Any]) -> list[RangeResult]:
    """The range results of a bench folder's results.json (to draw or tabulate them again)."""
    out = []
    for r in doc.get("ranges", []):
        rng = OWN_TIMING if r["range"] == OWN else TimeoutRange(r["lo_ms"], r["hi_ms"])
        res = RangeResult(rng, r["heartbeat_ms"], r.get("tick_ms"),
                          [Trial(**t) for t in r.get("trials", [])], r.get("error"), r.get("stopped_early"),
                          r.get("cluster_up_s"), list(r.get("cluster_failures", [])), r.get("image"))
        out.append(res)
    return out
