"""Split-brain and election checking: observer samples and client operations in, verdict out.

The observer records what each node believes (role, term, leader, commit
index) about every 50 ms. From those samples alone we can prove some
anomalies outright (two leaders in one term), and together with the client
operations we can show the one that hurts users: two nodes that both believe
they lead *and* both acknowledge client operations at the same time.

Everything here is a pure function of the history and runs first, so it
must be fast: an hour's run holds about 360,000 samples and 720,000 client
operations. Each is read once: one pass over the events buckets samples by
node and notes the few where a node's leadership changes (`_scan_samples`),
and one pass over the operations answers every question about them
(`_scan_ops`).
Nothing is allocated per sample (see `Observation` for why that matters);
only what changes (a leader run ending, a term going back) becomes an object.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

from checkers.impostor import followed, impostors_from_events
from history.operation import END_OF_TIME, Operation

WRITES = frozenset({"write", "cas", "put", "add", "append"})


class Observation(NamedTuple):
    """One status sample: what `node` believed at `time` (ns). `up` False = no answer.

    `check` does not build these for every sample: allocating ~360,000 objects
    while the history's millions of objects are alive set off repeated
    full garbage collections, which cost more than the checking itself. It
    builds them only for evidence; `observations_from_events` builds them all.
    """

    time: int
    node: str
    up: bool
    role: str | None = None
    term: int | None = None
    leader: str | None = None
    commit_index: int | None = None
    index: int | None = None  # history index, so evidence points back into the file


@dataclass(frozen=True, slots=True)
class LeaderInterval:
    """A node observed as leader of `term` from `start` to `end` (first to last sample)."""

    node: str
    term: int
    start: int
    end: int
    first_index: int | None
    last_index: int | None


@dataclass(frozen=True, slots=True)
class Fault:
    """A nemesis operation that took effect at `time` against `nodes`."""

    time: int
    f: str
    nodes: tuple[str, ...]
    index: int | None = None
    hits_leader: bool = False  # the failover timeline measures after it, if its nodes held the lead


def observation_from_event(event: dict) -> Observation | None:
    """Reads an observer event; None for events that are not status samples.

    The observer writes `{"process": "observer", "node": N, "time": T,
    "value": {"role", "term", "leader", "commit_index"} or null}`; null means
    the node did not answer (down, paused or cut off from the observer).
    """
    if event.get("process") != "observer" or "node" not in event:
        return None
    return _observation(event)


def observations_from_events(events: Iterable[dict]) -> list[Observation]:
    """Every status sample in the events, as `observation_from_event` reads them."""
    return [_observation(e) for e in events if e.get("process") == "observer" and "node" in e]


def _observation(event: dict) -> Observation:
    """An observer event (known to be one) as an Observation.

    A term or commit index that is not an int is taken as unknown (None); the
    per-node loop in `_read_node` reads samples the same way.
    """
    value = event.get("value")
    if value.__class__ is not dict:
        return Observation(event["time"], event["node"], False, index=event.get("index"))
    term = value.get("term")
    commit = value.get("commit_index")
    return Observation(event["time"], event["node"], True, value.get("role"),
                       term if term.__class__ is int else None, value.get("leader"),
                       commit if commit.__class__ is int else None, event.get("index"))


FaultFacts = Callable[[str, Any], "dict | None"]


def faults_from_events(events: Iterable[dict], fault_facts: FaultFacts | None = None) -> list[Fault]:
    """The nemesis operations that completed, with the nodes each hit.

    What an op did comes from its fault family as data, never from its name:
    the completion's own "fault" facts (the nemesis records {"nodes",
    "leader_nodes"?} there), else `fault_facts(f, value)` (for histories
    written before completions carried them; the harness passes the fault
    registry's), else nothing is known of it. "leader_nodes" is present when
    the op takes leadership away (a kill, a pause, a partition: the nodes it
    left without a majority).
    """
    faults = []
    invoked_at: dict[str, int] = {}
    for e in events:
        if e.get("process") != "nemesis" or e.get("type") == "fail":
            continue
        if e.get("type") == "invoke":
            invoked_at[str(e.get("f"))] = int(e["time"])
            continue
        f = str(e.get("f"))
        facts = e.get("fault")
        if not isinstance(facts, dict):
            facts = (fault_facts(f, e.get("value")) if fault_facts is not None else None) or {}
        leader_nodes = facts.get("leader_nodes")
        nodes = leader_nodes if isinstance(leader_nodes, (list, tuple)) else facts.get("nodes") or ()
        # The fault starts biting somewhere between invoke and completion (the
        # completion waits for verification); measure from the invoke, so a
        # leader elected while the nemesis verified is not taken as the old one.
        faults.append(Fault(time=invoked_at.pop(f, int(e["time"])), f=f, nodes=tuple(map(str, nodes)),
                            index=e.get("index"), hits_leader=isinstance(leader_nodes, (list, tuple))))
    return faults


class NodeReading(NamedTuple):
    """What one node's samples say, from one pass over them (`_read_node`)."""

    intervals: list[LeaderInterval]
    anomalies: list[dict]  # its term or commit index going back, in sample order
    # (time, node, term) whenever the node starts or stops leading or changes
    # term; term None = stopped, -1 = leads an unknown term. Most samples repeat
    # the last one, so the timeline replays only these.
    leader_changes: list[tuple[int, str, int | None]]


_time = itemgetter("time")
# Later than any time (and -_NEVER earlier): a sentinel that needs
# no test of its own. No acknowledged op returns then, so none is taken as a
# write's return in `_scan_ops`.
_NEVER = float("inf")


class SampleScan(NamedTuple):
    """The observer and nemesis events, from the one pass `_scan_samples` makes over them."""

    samples: dict[str, list[dict]]  # every node's samples, in history order
    # Per node, the samples `_read_node` needs to give the same reading as on
    # all of them (see `_scan_samples`); only meaningful if `in_time_order`.
    needed: dict[str, list[dict]]
    commit_went_back: set[str]  # nodes whose commit index went back: read all their samples
    in_time_order: bool  # the samples came in time order, so no node's need sorting
    nemesis: list[dict]


def _scan_samples(events: Iterable[dict]) -> SampleScan:
    """Buckets observer samples by node, noting the few that matter, in one pass.

    Touching a sample's dicts is most of what reading it costs (360,000 of
    them, scattered through the history's memory), so this pass does all the
    touching while it buckets, and `_read_node` then reads only what it needs.

    A node's reading changes only where its (leads, term) changes, as
    `_read_node` computes them: a leader run, a leadership change and a term
    going back all start or end at such a sample. So the samples it needs are
    the first one, each sample where (leads, term) differs from the previous,
    the sample before it, and the last one; the rest repeat their neighbours.
    The commit index is not in that key: where it goes back, the node's
    samples are read in full, which keeps the evidence `_read_node` gives.
    """
    samples: dict[str, list[dict]] = {}
    needed: dict[str, list[dict]] = {}
    # node -> [previous sample, its leads, its term, newest known commit index
    # (-inf before the first), append to its samples]
    state: dict[str, list] = {}
    commit_went_back: set[str] = set()
    nemesis = []
    in_time_order = True
    last_time = -_NEVER
    for e in events:
        process = e.get("process")
        if process != "observer":
            if process == "nemesis":
                nemesis.append(e)
            continue
        if "node" not in e:
            continue
        node = e["node"]
        time = e["time"]
        if time < last_time:
            in_time_order = False
        last_time = time
        # Read as `_read_node` reads it.
        value = e["value"]
        if value.__class__ is dict:
            term = value.get("term")
            if term.__class__ is not int:
                term = None
            leads = value.get("role") == "leader"
            commit = value.get("commit_index")
        else:
            term = commit = None
            leads = False
        st = state.get(node)
        if st is None:
            samples[node] = [e]
            needed[node] = [e]
            state[node] = [e, leads, term, commit if commit.__class__ is int else -_NEVER,
                           samples[node].append]
            continue
        st[4](e)
        if commit.__class__ is int:
            if commit < st[3]:
                commit_went_back.add(node)
            st[3] = commit
        if leads != st[1] or term != st[2]:
            keep = needed[node]
            if keep[-1] is not st[0]:
                keep.append(st[0])
            keep.append(e)
            st[1] = leads
            st[2] = term
        st[0] = e
    for node, st in state.items():
        if needed[node][-1] is not st[0]:
            needed[node].append(st[0])
    return SampleScan(samples, needed, commit_went_back, in_time_order, nemesis)


def _read_node(node: str, samples: Sequence[dict]) -> NodeReading:
    """Leader runs, backward steps and leadership changes in one node's samples (time order).

    Reads the observer's event dicts directly, as `_observation` would read
    them, and builds objects only when something changes. `check` hands it
    only the samples `_scan_samples` kept, unless it has to read them all.
    """
    intervals: list[LeaderInterval] = []
    anomalies: list[dict] = []
    changes: list[tuple[int, str, int | None]] = []
    run_term = None  # the term of the current run of samples leading a known term
    run_first = run_last = None  # its first and last samples
    last_term = last_commit = None  # newest known term and commit index ...
    last_term_event = last_commit_event = None  # ... and the samples that showed them
    leading = None  # what `leader_changes` last said for this node
    for e in samples:
        value = e["value"]
        if value.__class__ is dict:
            term = value.get("term")
            if term.__class__ is not int:
                term = None
            commit = value.get("commit_index")
            if commit.__class__ is not int:
                commit = None
            leads = value.get("role") == "leader"
            # A term or commit index going back: the node lost persisted state.
            if term is not None:
                if last_term is not None and term < last_term:
                    anomalies.append(_went_back("term-decreased", last_term_event, e))
                last_term, last_term_event = term, e
            if commit is not None:
                if last_commit is not None and commit < last_commit:
                    anomalies.append(_went_back("commit-index-decreased", last_commit_event, e))
                last_commit, last_commit_event = commit, e
        else:  # no answer
            term = None
            leads = False
        # Leader intervals: maximal runs of samples leading one known term.
        if run_term is not None and (not leads or term != run_term):
            intervals.append(_interval(node, run_term, run_first, run_last))
            run_term = None
        if leads and term is not None:
            if run_term is None:
                run_term, run_first = term, e
            run_last = e
        # The timeline counts a leader of an unknown term too.
        now = (-1 if term is None else term) if leads else None
        if now != leading:
            changes.append((e["time"], node, now))
            leading = now
    if run_term is not None:
        intervals.append(_interval(node, run_term, run_first, run_last))
    return NodeReading(intervals, anomalies, changes)


def _interval(node: str, term: int, first: dict, last: dict) -> LeaderInterval:
    return LeaderInterval(node=node, term=term, start=first["time"], end=last["time"],
                          first_index=first.get("index"), last_index=last.get("index"))


def _went_back(kind: str, prev_event: dict, event: dict) -> dict:
    """The anomaly for a node whose term or commit index went back from `prev_event` to `event`."""
    prev, o = _observation(prev_event), _observation(event)
    if kind == "term-decreased":
        before, after = prev.term, o.term
        summary = f"{o.node}: term went back from {before} to {after} (it did not persist its term)"
    else:
        before, after = prev.commit_index, o.commit_index
        summary = f"{o.node}: commit index went back from {before} to {after}"
    return {"type": kind, "node": o.node, "from": before, "to": after, "time": o.time,
            "observations": [prev._asdict(), o._asdict()], "summary": summary}


def _start_and_node(i: LeaderInterval) -> tuple[int, str]:
    return i.start, i.node


def leader_intervals(observations: Sequence[Observation]) -> list[LeaderInterval]:
    """Maximal runs of consecutive samples in which one node said it led one term.

    An interval runs from the first to the last sample of the run: we claim
    no more than was observed, so overlaps found are real overlaps. Samples
    are taken in the order given (`check` sorts them by time first).
    """
    by_node: dict[str, list[dict]] = defaultdict(list)
    for o in observations:
        by_node[o.node].append(_event(o))
    intervals = [i for node, samples in by_node.items() for i in _read_node(node, samples).intervals]
    intervals.sort(key=_start_and_node)
    return intervals


def _event(o: Observation) -> dict:
    """The observer event that `_observation` would read as `o`."""
    value = ({"role": o.role, "term": o.term, "leader": o.leader, "commit_index": o.commit_index}
             if o.up else None)
    return {"process": "observer", "node": o.node, "time": o.time, "value": value, "index": o.index}


def _two_leaders_one_term(intervals: Sequence[LeaderInterval]) -> list[dict]:
    by_term: dict[int, dict[str, LeaderInterval]] = defaultdict(dict)
    for i in intervals:
        by_term[i.term].setdefault(i.node, i)
    anomalies = []
    for term, leaders in sorted(by_term.items()):
        if len(leaders) > 1:
            nodes = sorted(leaders)
            anomalies.append({
                "type": "two-leaders-one-term",
                "term": term,
                "nodes": nodes,
                "observations": [asdict(leaders[n]) for n in nodes],
                "summary": f"term {term}: {' and '.join(nodes)} were both observed as leader",
            })
    return anomalies


def _overlaps(intervals: Sequence[LeaderInterval]) -> list[tuple[LeaderInterval, LeaderInterval, int, int]]:
    """Pairs of intervals of different nodes that overlap in real time, with the overlap."""
    out = []
    active: list[LeaderInterval] = []
    for cur in intervals:  # sorted by start
        active = [a for a in active if a.end >= cur.start]
        for a in active:
            if a.node != cur.node:
                out.append((a, cur, max(a.start, cur.start), min(a.end, cur.end)))
        active.append(cur)
    return out


class ServedOps(NamedTuple):
    """One node's acknowledged operations in call order, indexed for `_served_in`."""

    ops: list[Operation]
    calls: list[float]


def _scan_ops(ops: Iterable[Operation], windows: Iterable[tuple[int, int]],
              write_after: Sequence[float]) -> tuple[dict[str, ServedOps], list[float | None]]:
    """One pass over the client operations for what the verdict needs of them.

    Returns the acknowledged operations called inside any of the [lo, hi]
    `windows`, by node and indexed for `_served_in`, and for each time in
    `write_after` the earliest return at or after it of an acknowledged write
    (None if there is none). An hour's run has ~720,000 operations and few
    windows and times, so both are answered in one pass that does as little
    as it can per operation, and only the operations they pick are kept.
    """
    # The windows merged into disjoint ones in order: a call falls in one iff
    # the last window starting at or before it ends at or after it.
    los: list[int] = []
    his: list[int] = []
    for lo, hi in sorted(windows):
        if his and lo <= his[-1]:
            his[-1] = max(his[-1], hi)
        else:
            los.append(lo)
            his.append(hi)
    # earliest[k]: the earliest write return r with times[k] <= r < times[k + 1].
    times = sorted(set(write_after))
    earliest = [_NEVER] * len(times)
    # Most operations are called outside every window and return after a
    # write that returned earlier in the same range of `times`, so the loop
    # settles that with a few comparisons against the window the previous
    # call fell near and the range the previous return fell in (ops come
    # about in time order), and bisects or reads the op further only when
    # that does not settle it.
    w_lo = w_next = w_hi = q_lo = q_next = q_best = _NEVER  # "recompute on first op"
    k = -1
    acked = []
    for op in ops:
        call, ret = op.call, op.ret
        if not w_lo <= call < w_next:
            # The window `call` can fall in: the last starting at or before
            # it, none if there is no such window.
            w = bisect_right(los, call) - 1
            w_lo = los[w] if w >= 0 else -_NEVER
            w_next = los[w + 1] if w + 1 < len(los) else _NEVER
            w_hi = his[w] if w >= 0 else -_NEVER
        if call <= w_hi and op.status == "ok" and op.node is not None:
            acked.append(op)
        if not q_lo <= ret < q_next:
            k = bisect_right(times, ret) - 1
            q_lo = times[k] if k >= 0 else -_NEVER
            q_next = times[k + 1] if k + 1 < len(times) else _NEVER
            q_best = earliest[k] if k >= 0 else -_NEVER
        # Strictly earlier only: of equal returns the first in op order
        # counts, as a stable sort of all returns would have it.
        if ret < q_best and op.status == "ok" and op.f in WRITES:
            earliest[k] = q_best = ret
    # The earliest at or after times[k] is the earliest of earliest[k:].
    after: dict[float, float | None] = {}
    best = None
    for k in range(len(times) - 1, -1, -1):
        if earliest[k] != _NEVER:  # earlier than any in later ranges
            best = earliest[k]
        after[times[k]] = best
    acked.sort(key=attrgetter("call"))
    by_node: dict[str, list[Operation]] = defaultdict(list)
    for op in acked:
        by_node[op.node].append(op)
    served = {node: ServedOps(lst, list(map(attrgetter("call"), lst))) for node, lst in by_node.items()}
    return served, [after[t] for t in write_after]


def _served_in(served: dict[str, ServedOps], node: str, lo: int, hi: int) -> list[Operation]:
    """Acknowledged operations that `node` was asked for inside [lo, hi], in call order.

    Only calls inside the overlap count. An operation called before it, while
    the node led alone, may have taken effect then and only been answered
    late: counting it flagged correct stores whose old leader answered a
    write it had committed before its successor was elected (two raftkv
    nightly runs, both linearizable; bench/rejudge_dual_serving.py). A node
    that acknowledges an operation it was asked for after another node was
    seen leading a later term has served it during the overlap.
    """
    s = served.get(node)
    if s is None:
        return []
    return s.ops[bisect_left(s.calls, lo):bisect_right(s.calls, hi)]


def _timeline(leader_changes: Sequence[tuple[int, str, int | None]], first_time: int | None,
              last_time: int | None, intervals: Sequence[LeaderInterval],
              faults: Sequence[Fault]) -> tuple[dict, list[tuple[dict, int]]]:
    """Elections, time without a leader, and failovers after faults that hit the leader.

    `leader_changes` are every node's, in the order of a sort of all samples
    by (time, node); `first_time` and `last_time` bound the samples.

    A failover's time to the first acknowledged write needs the client
    operations, which `check` reads once for everything: each failover that
    found a new leader is also returned with the time it did, for `check` to
    fill in its "write_after_ns".
    """
    leaders_per_term: dict[int, list[str]] = defaultdict(list)
    for i in intervals:
        if i.node not in leaders_per_term[i.term]:
            leaders_per_term[i.term].append(i.node)

    # Time with no leader: between consecutive sample instants, no node said
    # it led. Sampled, so it is accurate to the observer's period. No one
    # leads before the first change, so the clock starts at the first sample.
    no_leader_ns = 0
    leaderless_since = first_time
    # (time, node, term) of the newest-term leader whenever that changes: a
    # deposed leader that has not noticed yet does not count as "the" leader.
    changes: list[tuple[int, str | None, int]] = []
    leading: dict[str, int] = {}  # node -> term, for nodes that lead right now
    for time, node, term in leader_changes:
        if term is None:
            del leading[node]
        else:
            leading[node] = term
        # Ties in term go to the node that has led longest (dict order).
        top = max(leading.items(), key=itemgetter(1)) if leading else (None, -1)
        if leaderless_since is not None and leading:
            no_leader_ns += time - leaderless_since
            leaderless_since = None
        if not changes or changes[-1][1:] != top:
            changes.append((time, *top))
        if not leading and leaderless_since is None:
            leaderless_since = time
    if leaderless_since is not None:
        no_leader_ns += last_time - leaderless_since

    times = [c[0] for c in changes]
    failovers = []
    new_leaders: list[tuple[dict, int]] = []
    for fault in faults:
        if not fault.hits_leader:
            continue
        pos = bisect_left(times, fault.time)
        _, before, before_term = changes[pos - 1] if pos > 0 else (0, None, -1)
        if before is None or before not in fault.nodes:
            continue
        new_leader_at = None
        new_leader = None
        for t, leader, term in changes[pos:]:
            if leader is not None and leader != before and term > before_term:
                new_leader_at, new_leader = t, leader
                break
        failover = {
            "fault": fault.f, "time": fault.time, "old_leader": before, "new_leader": new_leader,
            "fault_index": fault.index,
            "leader_after_ns": None if new_leader_at is None else new_leader_at - fault.time,
            "write_after_ns": None,
        }
        failovers.append(failover)
        if new_leader_at is not None:
            new_leaders.append((failover, new_leader_at))
    timeline = {
        "leaders_per_term": {str(t): n for t, n in sorted(leaders_per_term.items())},
        "elections": len(leaders_per_term),
        "no_leader_ns": no_leader_ns,
        "failovers": failovers,
    }
    return timeline, new_leaders


def check(events: Sequence[dict], ops: Sequence[Operation], fault_facts: FaultFacts | None = None) -> dict:
    """Split-brain verdict from a history's raw events and its paired client operations.

    Anomalies: two leaders in one term; dual-serving (two nodes that both
    believed they led, in different terms, and both acknowledged client
    operations called while they overlapped); a node's term or commit index going
    backwards; a member that followed an impostor (checkers.impostor).
    Overlap alone is legal in Raft and is reported, not judged.
    `fault_facts`: what a nemesis op did, for completions that do not say
    (see `faults_from_events`).
    """
    scan = _scan_samples(events)
    nemesis = scan.nemesis
    if scan.in_time_order:
        # Each node's samples are in time order already; its reading needs
        # only the samples the scan kept, unless its commit index went back.
        to_read = {node: all_samples if node in scan.commit_went_back else scan.needed[node]
                   for node, all_samples in scan.samples.items()}
    else:
        # Sorting each node's samples by time (stably) puts them in the order
        # that sorting all samples by (time, node) would.
        to_read = {node: sorted(all_samples, key=_time) for node, all_samples in scan.samples.items()}
    readings = [_read_node(node, samples) for node, samples in to_read.items()]
    faults = sorted(faults_from_events(nemesis, fault_facts), key=attrgetter("time"))
    intervals = sorted((i for r in readings for i in r.intervals), key=_start_and_node)
    # Merged in the order of a sort of all samples by (time, node): the sorts
    # are stable and each node's lists are in its sample order.
    went_back = sorted((a for r in readings for a in r.anomalies), key=itemgetter("time", "node"))
    leader_changes = sorted((c for r in readings for c in r.leader_changes), key=itemgetter(0, 1))
    # Every node's first and last samples are among those read.
    first_time = min((s[0]["time"] for s in to_read.values()), default=None)
    last_time = max((s[-1]["time"] for s in to_read.values()), default=None)

    anomalies = _two_leaders_one_term(intervals)

    pairs = _overlaps(intervals)
    timeline, new_leaders = _timeline(leader_changes, first_time, last_time, intervals, faults)
    # Client operations matter only if leaders overlapped or a failover found a new leader.
    served: dict[str, ServedOps] = {}
    if pairs or new_leaders:
        served, first_writes = _scan_ops(ops, [(lo, hi) for _, _, lo, hi in pairs],
                                         [t for _, t in new_leaders])
        for (failover, _), first_write in zip(new_leaders, first_writes, strict=True):
            if first_write is not None:
                failover["write_after_ns"] = int(first_write - failover["time"])

    overlaps = []
    for a, b, lo, hi in pairs:
        served_a = _served_in(served, a.node, lo, hi)
        served_b = _served_in(served, b.node, lo, hi)
        entry = {"leaders": [asdict(a), asdict(b)], "start": lo, "end": hi,
                 "served": {a.node: len(served_a), b.node: len(served_b)}}
        overlaps.append(entry)
        if served_a and served_b and a.term != b.term:
            anomalies.append({
                "type": "dual-serving",
                "nodes": [a.node, b.node], "terms": [a.term, b.term], "start": lo, "end": hi,
                "operations": {a.node: [_op_ref(op) for op in served_a[:20]],
                               b.node: [_op_ref(op) for op in served_b[:20]]},
                "summary": f"{a.node} (term {a.term}) and {b.node} (term {b.term}) both led and "
                           f"both acknowledged client operations between "
                           f"{lo / 1e9:.3f}s and {hi / 1e9:.3f}s",
            })

    anomalies.extend(went_back)
    # Only a run with an impostor fault reads the samples again.
    impostors = impostors_from_events(nemesis)
    if impostors:
        samples = to_read if not scan.in_time_order else scan.samples
        anomalies.extend(followed(samples, impostors, ops, scan.samples))
    return {
        "checker": "split-brain",
        "valid": not anomalies,
        "anomalies": anomalies,
        "overlaps": overlaps,
        "observations": sum(map(len, scan.samples.values())),
        "timeline": timeline,
    }


def _op_ref(op: Operation) -> dict:
    return {"index": op.index, "process": op.process, "f": op.f, "key": op.key, "value": op.value,
            "output": op.output, "call": op.call,
            "ret": None if op.ret == END_OF_TIME else op.ret}
