"""Mutual exclusion of application leaders: who believed they led, when, and what the shared resource accepted.

The election workload's history has two kinds of operations (workloads/election.py writes the contract):

- candidate claims, one process per candidate incarnation, `node` = the candidate: `acquire` (ok: it
  believes it leads, output {"token", "deadline"}), `renew` (ok: a new believed deadline), `release`
  and `lost` (ok: it stopped believing, output {"token", "why"}). A candidate's record reaches the
  history late (it is collected from the candidate, which may have been paused), so each value and
  output carries "at": when the candidate did it, in ns on the history's clock (its CLOCK_MONOTONIC,
  which no fault skews, minus the run's origin), and "local": its own wall clock then, in seconds
  (which the clock nemesis does skew). "deadline" is on that wall clock.
- leader work, process "resource", as the resource saw it (its own time is the history's clock): f
  "work", value {"candidate", "token", "fenced", "highest"}, ok when it accepted the write, fail when
  it rejected it (only a fenced resource rejects: a token below the highest it accepted).

From these it computes, per candidate, the intervals in which it believed it led (from its acquire to
its release or lost, or to the kill of its process, or to the end of the history: a paused holder
still believes), and then:

- overlaps: two candidates believing at once. A fact, not an anomaly: leases make it normal.
- "two leaders acting at once" (anomaly): an overlap in which the resource accepted work from both, the
  older token's after the newer one's (had all the older holder's work come first, the resource would have
  seen what a serial handover looks like; for a fenced resource that is the stale case below).
- fencing anomalies, for a fenced resource: work accepted with a token below one it had already
  accepted; work accepted from a holder whose lease had already been granted to another (a higher
  token acquired before the write). Rejections are counted ("fencing saved you N times"), not flagged.
- statistics: leadership changes, time without a leader, failover after the holder was killed,
  paused or cut off, accepted work per leader; `in_brief`, a line of them for the run's summary.

Clock skew: claim times come from the candidate's monotonic clock, so a skewed candidate's claims
stand where they happened. Its believed deadline is on its skewed wall clock: the checker maps it
onto the history's clock with the offsets the nemesis recorded (bump-clock completions give each
node's absolute offset and rate; reset-clock and heal put them back), so an interval says both when
the candidate stopped believing and when its own rule said it should have ("lease_end").
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from checkers.verdict import Anomaly, CheckInput, Verdict
from history.operation import END_OF_TIME, Operation

CLAIM_FS = ("acquire", "renew", "release", "lost")
WORK_F = "work"
RESOURCE = "resource"
NS = 1_000_000_000


@dataclass
class Belief:
    """One candidate's belief that it leads, with one token."""

    node: str
    token: Any
    start: float
    end: float
    why_end: str  # released | lost:<why> | killed | end-of-history
    acquire_index: int
    end_index: int | None = None
    deadline: float | None = None  # the last believed deadline, on the candidate's own wall clock
    lease_end: float | None = None  # when its own clock reached it, on the history's clock
    accepted: list[int] = field(default_factory=list)  # history indices of its accepted work
    rejected: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "token": self.token, "start": self.start,
                "end": None if self.end == END_OF_TIME else self.end, "why_end": self.why_end,
                "acquire_index": self.acquire_index, "end_index": self.end_index, "deadline": self.deadline,
                "lease_end": self.lease_end, "accepted": len(self.accepted), "rejected": len(self.rejected)}


# ---------------------------------------------------------------- clocks


class ClockSegments:
    """A node's wall-clock offset over the history: (from ns, offset s, rate), from the nemesis's completions."""

    def __init__(self) -> None:
        self.changes: dict[str, list[tuple[float, float, float]]] = defaultdict(list)

    def set(self, node: str, t: float, offset_s: float, rate: float = 1.0) -> None:
        self.changes[node].append((t, offset_s, rate))

    def reset_all(self, t: float) -> None:
        for node in list(self.changes):
            self.set(node, t, 0.0, 1.0)

    def offset(self, node: str, t: float) -> float:
        """Seconds the node's wall clock was ahead of true time at t (rate drift within a segment included)."""
        off, since, rate = 0.0, 0.0, 1.0
        for at, o, r in self.changes.get(node, ()):
            if at > t:
                break
            off, since, rate = o, at, r
        return off + (rate - 1.0) * (t - since) / NS

    def skewed(self, node: str) -> bool:
        return any(o != 0.0 or r != 1.0 for _, o, r in self.changes.get(node, ()))

    def when_local_reaches(self, node: str, deadline: float, at: float, local: float) -> float:
        """The history time (ns) at which the node's wall clock reads `deadline`, given that it read `local`
        at history time `at`. True wall time then was local - offset(at); the clock is true time plus the
        offset in force, so walk the segments after `at` until it gets there."""
        base = local - self.offset(node, at) - at / NS  # true wall seconds minus history seconds
        points = [at] + [c for c, _, _ in self.changes.get(node, ()) if c > at] + [END_OF_TIME]
        for lo, hi in zip(points, points[1:], strict=False):
            off_lo = self.offset(node, lo)
            reading = lo / NS + base + off_lo
            if reading >= deadline:
                return lo  # a jump forward passed it at the change itself
            _, _, rate = self._segment(node, lo)
            t = lo + (deadline - reading) / rate * NS
            if t < hi:
                return t
        return END_OF_TIME

    def _segment(self, node: str, t: float) -> tuple[float, float, float]:
        seg = (0.0, 0.0, 1.0)
        for c in self.changes.get(node, ()):
            if c[0] > t:
                break
            seg = c
        return seg


def clock_segments(events: Sequence[Mapping[str, Any]],
                   fault_facts: Callable[[str, Any], dict | None] | None = None) -> ClockSegments:
    """Each node's clock offsets from the nemesis's completions (bump-clock value: {node: {"offset_s",
    "rate"}}; reset-clock value: [nodes]; heal: every clock back), known through the clock family."""
    segs = ClockSegments()
    for e in events:
        if e.get("process") != "nemesis" or e.get("type") == "invoke":
            continue
        f, value, t = str(e.get("f")), e.get("value"), float(e.get("time", 0))
        facts = e.get("fault") if isinstance(e.get("fault"), dict) else (fault_facts(f, value) if fault_facts else None)
        if f == "heal":
            segs.reset_all(t)
            continue
        if not facts or facts.get("family") != "clock":
            continue
        if isinstance(value, dict):
            for node, s in value.items():
                if isinstance(s, Mapping) and isinstance(s.get("offset_s"), (int, float)):
                    segs.set(str(node), t, float(s["offset_s"]), float(s.get("rate") or 1.0))
        elif isinstance(value, list):
            for node in value:
                segs.set(str(node), t, 0.0, 1.0)
    return segs


# ---------------------------------------------------------------- reading the history


def _stamp(d: Any, fallback: float) -> float:
    if isinstance(d, Mapping) and isinstance(d.get("at"), (int, float)):
        return float(d["at"])
    return fallback


# The faults that can take leadership from a holder, whose failover the statistics time.
HOLDER_FAULTS = ("kill", "pause", "partition")


def _process_faults(events: Sequence[Mapping[str, Any]],
                    fault_facts: Callable[[str, Any], dict | None] | None) -> list[tuple[float, str, str, float]]:
    """(time of the invoke, family, node, time of the completion) for every completed kill, pause and
    partition (a partition's nodes are the candidates it cut off from the service)."""
    out, invoked = [], {}
    for e in events:
        if e.get("process") != "nemesis":
            continue
        f = str(e.get("f"))
        if e.get("type") == "invoke":
            invoked[f] = float(e.get("time", 0))
            continue
        facts = e.get("fault") if isinstance(e.get("fault"), dict) else (
            fault_facts(f, e.get("value")) if fault_facts else None)
        if not facts or facts.get("family") not in HOLDER_FAULTS or "leader_nodes" not in facts:
            continue  # only the start ops take leadership away; their stops do not
        done = float(e.get("time", 0))
        start = invoked.pop(f, done)
        for node in facts.get("nodes") or ():
            out.append((start, str(facts["family"]), str(node), done))
    return sorted(out)


def beliefs(ops: Sequence[Operation], kills: Sequence[tuple[float, str, float]], last_time: float,
            clocks: ClockSegments | None = None) -> list[Belief]:
    """Every believed-leadership interval, in start order (see the module docstring).

    `kills`: (invoke, node, completion). The process died somewhere in between: a claim stamped before
    the completion may still be its own (a release just before the SIGKILL landed), so only a claim
    stamped after the completion, or the end of the history, shows that the kill ended the belief, which
    then ends at the kill's invoke."""
    clocks = clocks or ClockSegments()
    claims = sorted((o for o in ops if o.f in CLAIM_FS and o.status == "ok" and o.node is not None),
                    key=lambda o: _stamp(o.output, o.ret))
    open_: dict[str, Belief] = {}
    done: list[Belief] = []
    kill_times: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for t, node, gone in kills:
        kill_times[node].append((t, gone))

    def killed_between(node: str, lo: float, hi: float) -> float | None:
        return next((t for t, gone in kill_times.get(node, ()) if lo <= t and gone <= hi), None)

    def close(b: Belief, t: float, why: str, index: int | None) -> None:
        b.end, b.why_end, b.end_index = t, why, index
        done.append(b)

    for o in claims:
        out = o.output if isinstance(o.output, Mapping) else {}
        at = _stamp(out, o.ret)
        node = str(o.node)
        cur = open_.get(node)
        if cur is not None:
            k = killed_between(node, cur.start, at)
            if k is not None:  # the process died holding; this claim is a later incarnation's
                close(open_.pop(node), k, "killed", None)
                cur = None
        if o.f == "acquire":
            if cur is not None:
                close(open_.pop(node), at, "re-acquired", o.index)
            b = Belief(node, out.get("token"), at, END_OF_TIME, "end-of-history", o.index)
            open_[node] = b
            cur = b
        if cur is None:
            continue
        if isinstance(out.get("deadline"), (int, float)) and isinstance(out.get("local"), (int, float)):
            cur.deadline = float(out["deadline"])
            cur.lease_end = clocks.when_local_reaches(node, cur.deadline, at, float(out["local"]))
            if cur.lease_end == END_OF_TIME:
                cur.lease_end = None
        if o.f in ("release", "lost"):
            why = "released" if o.f == "release" else f"lost:{out.get('why', '?')}"
            close(open_.pop(node), at, why, o.index)
    for node, b in open_.items():
        k = killed_between(node, b.start, END_OF_TIME)
        close(b, k, "killed", None) if k is not None else close(b, last_time, "end-of-history", None)
    return sorted(done, key=lambda b: (b.start, b.node))


# ---------------------------------------------------------------- the checker


class MutualExclusionChecker:
    name = "mutual-exclusion"

    def check(self, history: CheckInput) -> Verdict:
        started = time.monotonic()
        result = check(history.ops, history.events, history.fault_facts)
        anomalies = tuple(self.anomalies(result))
        valid: Any = False if anomalies else True
        reason = None
        if not anomalies and not result["intervals"]:
            valid, reason = "unknown", "no candidate ever acquired leadership: nothing to judge"
        return Verdict(self.name, valid, anomalies, details=result, reason=reason,
                       seconds=round(time.monotonic() - started, 3))

    @staticmethod
    def anomalies(result: Mapping[str, Any]) -> list[Anomaly]:
        return [Anomaly.from_dict(a) for a in result.get("anomalies") or () if isinstance(a, Mapping)]


def _ref(o: Operation) -> dict[str, Any]:
    v = o.value if isinstance(o.value, Mapping) else {}
    return {"index": o.index, "time": o.call, "candidate": v.get("candidate", o.node), "token": v.get("token"),
            "accepted": o.status == "ok"}


def _overlap_anomaly(a: Belief, b: Belief, lo: float, hi: float, wa: list[Operation],
                     wb: list[Operation], clocks: ClockSegments) -> dict[str, Any]:
    first = min(wa[0].call, wb[0].call)
    skew = {n: round(clocks.offset(n, lo), 3) for n in (a.node, b.node) if round(clocks.offset(n, lo), 3)}
    why = {n: bel.why_end for n, bel in ((a.node, a), (b.node, b))}
    older, newer = (a, b) if _token_key(a.token) <= _token_key(b.token) else (b, a)
    summary = (f"two leaders acting at once: {a.node} (token {a.token}) and {b.node} (token {b.token}) both "
               f"believed they led for {(hi - lo) / 1e6:.0f} ms, and the resource accepted work from both "
               f"({len(wa)} from {a.node}, {len(wb)} from {b.node}), {older.node}'s after {newer.node}'s")
    if skew:
        summary += "; clock offsets then: " + ", ".join(f"{n} {o:+g}s" for n, o in skew.items())
    ops = tuple(o.index for o in (*wa[:20], *wb[:20])) + (a.acquire_index, b.acquire_index)
    return {"kind": "two-leaders-acting", "summary": summary, "start": lo, "end": hi,
            "at": max(wa[0].call, wb[0].call), "operations": list(ops), "nodes": [a.node, b.node],
            "evidence": {"claims": [a.to_dict(), b.to_dict()], "ended": why, "clock_offsets_s": skew,
                         "work": [_ref(o) for o in (*wa[:10], *wb[:10])], "first_work": first,
                         "focus": [lo, hi]}}


def check(ops: Sequence[Operation], events: Sequence[Mapping[str, Any]] = (),
          fault_facts: Callable[[str, Any], dict | None] | None = None) -> dict[str, Any]:
    """The checker's result as plain data: intervals, overlaps, anomalies (Anomaly dicts), fencing, stats."""
    clocks = clock_segments(events, fault_facts)
    faults = _process_faults(events, fault_facts)
    kills = [(t, n, done) for t, fam, n, done in faults if fam == "kill"]
    times = [o.call for o in ops] + [o.ret for o in ops if o.ret != END_OF_TIME]
    times += [_stamp(o.output, o.ret) for o in ops if o.f in CLAIM_FS and o.status == "ok"]
    times += [float(e.get("time", 0)) for e in events]
    first_time, last_time = (min(times), max(times)) if times else (0.0, 0.0)
    bel = beliefs(ops, kills, last_time, clocks)
    work = sorted((o for o in ops if o.f == WORK_F and o.status in ("ok", "fail")), key=lambda o: (o.call, o.index))

    by_token: dict[tuple[str, Any], Belief] = {(b.node, b.token): b for b in bel}
    for o in work:
        v = o.value if isinstance(o.value, Mapping) else {}
        b = by_token.get((str(v.get("candidate", o.node)), v.get("token")))
        if b is not None:
            (b.accepted if o.status == "ok" else b.rejected).append(o.index)
    accepted_by: dict[str, list[Operation]] = defaultdict(list)
    for o in work:
        if o.status == "ok":
            accepted_by[str((o.value or {}).get("candidate", o.node))].append(o)

    anomalies: list[dict[str, Any]] = []
    overlaps: list[dict[str, Any]] = []
    for i, a in enumerate(bel):
        for b in bel[i + 1:]:
            if b.start >= a.end:
                break
            if a.node == b.node:
                continue
            lo, hi = max(a.start, b.start), min(a.end, b.end)
            if hi <= lo:
                continue
            wa = [o for o in accepted_by[a.node] if lo <= o.call <= hi and (o.value or {}).get("token") == a.token]
            wb = [o for o in accepted_by[b.node] if lo <= o.call <= hi and (o.value or {}).get("token") == b.token]
            overlaps.append({"nodes": [a.node, b.node], "tokens": [a.token, b.token], "start": lo, "end": hi,
                             "ms": round((hi - lo) / 1e6, 1), "accepted": [len(wa), len(wb)]})
            if wa and wb and _interleaved(a, wa, b, wb):
                anomalies.append(_overlap_anomaly(a, b, lo, hi, wa, wb, clocks))

    fencing = _fencing(work, bel)
    anomalies += fencing["anomalies"]
    stats = _stats(bel, work, faults, first_time, last_time)
    candidates = sorted({str(o.node) for o in ops if o.node is not None and (o.f in CLAIM_FS or o.f == "start")})
    return {"candidates": candidates, "intervals": [b.to_dict() for b in bel], "overlaps": overlaps,
            "anomalies": anomalies,
            "fencing": {k: v for k, v in fencing.items() if k != "anomalies"},
            "clock_skewed": sorted(clocks.changes), "stats": stats,
            "in_brief": in_brief(stats, fencing, len(overlaps))}


def in_brief(stats: Mapping[str, Any], fencing: Mapping[str, Any], overlaps: int) -> str:
    """One line of what the claims show, for the run's summary (an election run has no client ops to count)."""
    parts = [f"{stats['acquisitions']} acquisitions, {stats['leadership_changes']} leadership changes, "
             f"{stats['leaderless_s']:g} s without a leader", f"{overlaps} overlap{'' if overlaps == 1 else 's'}"]
    timed = [f for f in stats["failovers"] if f["failover_s"] is not None]
    if stats["failovers"]:
        parts.append(f"{len(stats['failovers'])} faults hit a holder" + (
            f", failover mean {stats['failover_s_mean']:g} s, max {stats['failover_s_max']:g} s" if timed else ""))
    parts.append(f"{stats['work_accepted']} writes accepted"
                 + (f", {fencing['saved']} stale ones rejected (fencing)" if fencing.get("fenced") else ""))
    return "; ".join(parts)


def _interleaved(a: Belief, wa: list[Operation], b: Belief, wb: list[Operation]) -> bool:
    """Did the resource take the older holder's work after the newer one's? Work of the older token that
    all came before the newer holder's first is what a serial handover also looks like at the resource (the
    old lease merely seemed to last longer): that case is `fencing-stale-accepted`, not two leaders."""
    ka, kb = _token_key(a.token), _token_key(b.token)
    if ka == kb:
        return True
    (old, w_old), (_, w_new) = ((a, wa), (b, wb)) if ka < kb else ((b, wb), (a, wa))
    return max(o.call for o in w_old) > min(o.call for o in w_new)


def _token_key(t: Any) -> tuple:
    return (0, t) if isinstance(t, (int, float)) and not isinstance(t, bool) else (1, str(t))


def _fencing(work: Sequence[Operation], bel: Sequence[Belief]) -> dict[str, Any]:
    """Fenced resource: out-of-order and stale accepts (anomalies); rejections (saves)."""
    anomalies: list[dict[str, Any]] = []
    rejected = [o for o in work if o.status == "fail"]
    fenced = any((o.value or {}).get("fenced") for o in work)
    highest: tuple | None = None
    highest_op: Operation | None = None
    grants = sorted(((b.start, _token_key(b.token), b) for b in bel), key=lambda g: g[0])
    out_of_order = stale = 0
    for o in work:
        v = o.value if isinstance(o.value, Mapping) else {}
        if o.status != "ok" or not v.get("fenced"):
            if o.status == "ok":
                k = _token_key(v.get("token"))
                highest, highest_op = (k, o) if highest is None or k > highest else (highest, highest_op)
            continue
        k = _token_key(v.get("token"))
        cand = str(v.get("candidate", o.node))
        if highest is not None and k < highest:
            out_of_order += 1
            if out_of_order <= 5:
                anomalies.append({
                    "kind": "fencing-out-of-order", "start": highest_op.call, "end": o.call, "at": o.call,
                    "summary": f"the fenced resource accepted work from {cand} with token {v.get('token')} after it "
                               f"had accepted token {(highest_op.value or {}).get('token')}",
                    "operations": [highest_op.index, o.index], "nodes": [cand],
                    "evidence": {"work": [_ref(highest_op), _ref(o)], "focus": [highest_op.call, o.call]}})
        else:
            # Granted to another before this write: a higher token that someone else had acquired by then.
            newer = next((b for t, gk, b in grants if t <= o.call and gk > k and b.node != cand), None)
            if newer is not None:
                stale += 1
                if stale <= 5:
                    anomalies.append({
                        "kind": "fencing-stale-accepted", "start": newer.start, "end": o.call, "at": o.call,
                        "summary": f"the fenced resource accepted work from {cand} with token {v.get('token')} "
                                   f"{(o.call - newer.start) / 1e6:.0f} ms after {newer.node} had acquired token "
                                   f"{newer.token} (the newer holder had not written yet, so the fence did not know)",
                        "operations": [newer.acquire_index, o.index], "nodes": [cand, newer.node],
                        "evidence": {"work": [_ref(o)], "newer_claim": newer.to_dict(),
                                     "focus": [newer.start, o.call]}})
        if highest is None or k > highest:
            highest, highest_op = k, o
    saves = defaultdict(int)
    for o in rejected:
        saves[str((o.value or {}).get("candidate", o.node))] += 1
    return {"fenced": fenced, "saved": len(rejected), "saved_by_candidate": dict(saves),
            "rejected_operations": [o.index for o in rejected[:200]],
            "out_of_order_accepted": out_of_order, "stale_accepted": stale,
            "sentence": f"fencing saved you {len(rejected)} time{'s' * (len(rejected) != 1)}" if fenced else None,
            "anomalies": anomalies}


def _stats(bel: Sequence[Belief], work: Sequence[Operation], faults: Sequence[tuple[float, str, str, float]],
           first_time: float, last_time: float) -> dict[str, Any]:
    changes, prev = 0, None
    for b in bel:
        if prev is not None and b.node != prev:
            changes += 1
        prev = b.node
    # Time without a leader: the span not covered by anyone's belief, from the first acquire on.
    leaderless, covered_to = 0.0, None
    for b in bel:
        if covered_to is not None and b.start > covered_to:
            leaderless += b.start - covered_to
        covered_to = b.end if covered_to is None else max(covered_to, b.end)
    if covered_to is not None and covered_to < last_time:
        leaderless += last_time - covered_to
    failovers = []
    for t, fam, node, _ in faults:
        holder = next((b for b in bel if b.node == node and b.start <= t <= b.end), None)
        if holder is None:
            continue
        nxt = next((b for b in bel if b.start > t and b.node != node), None)
        failovers.append({"fault": fam, "node": node, "token": holder.token, "at": t,
                          "new_leader": nxt.node if nxt else None,
                          "failover_s": round((nxt.start - t) / NS, 3) if nxt else None})
    per_leader: dict[str, int] = defaultdict(int)
    for b in bel:
        per_leader[f"{b.node}/{b.token}"] += len(b.accepted)
    secs = [f["failover_s"] for f in failovers if f["failover_s"] is not None]
    return {"acquisitions": len(bel), "leadership_changes": changes,
            "leaderless_s": round(leaderless / NS, 3) if bel else round((last_time - first_time) / NS, 3),
            "failovers": failovers, "failover_s_max": max(secs) if secs else None,
            "failover_s_mean": round(sum(secs) / len(secs), 3) if secs else None,
            "work_accepted": sum(1 for o in work if o.status == "ok"),
            "work_rejected": sum(1 for o in work if o.status == "fail"),
            "work_per_leader": dict(per_leader)}
