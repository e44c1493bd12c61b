"""Split-brain and election checking: observer samples and client operations in, verdict out.

The observer records what each node believes (role, term, leader, commit
index) about every 50 ms. From those samples alone we can prove some
anomalies outright (two leaders in one term), and together with the client
operations we can show the one that hurts users: two nodes that both believe
they lead *and* both acknowledge client operations at the same time.

Everything here is a pure function of the history and runs first, so it
must be fast: an hour's run holds about 360,000 samples. The history is read
in one pass that buckets samples by node, then one loop per node reads its
samples straight from the event dicts. Nothing is allocated per sample (see
`Observation` for why that matters); only what changes (a leader run ending,
a term going back) becomes an object.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import accumulate
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

from checkers.operation import END_OF_TIME, Operation

# Faults after which we measure how long the cluster took to recover a leader.
LEADER_FAULTS = frozenset({"kill", "pause", "start-partition"})
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


def _nodes_named(value: Any) -> tuple[str, ...]:
    """The nodes a nemesis completion says it touched, whatever shape its value has."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)):
        out: list[str] = []
        for v in value:
            out.extend(_nodes_named(v))
        return tuple(dict.fromkeys(out))
    if isinstance(value, dict):
        for k in ("nodes", "node", "targets", "isolated"):
            if k in value:
                return _nodes_named(value[k])
        if "grudge" in value and isinstance(value["grudge"], dict):
            # A grudge maps a node to the nodes it cannot hear: every node
            # with a grudge is cut off from someone.
            return tuple(str(n) for n, cut in value["grudge"].items() if cut)
    return ()


def cut_off_nodes(drops: dict) -> tuple[str, ...]:
    """Nodes that a partition leaves without a majority to talk to both ways.

    `drops` maps each node to the nodes whose packets it drops. A leader among
    these nodes cannot commit anything, so the fault hit it.
    """
    nodes = set(drops)
    for cut in drops.values():
        nodes.update(cut)
    hears = {n: {m for m in nodes if m != n and m not in drops.get(n, ()) and n not in drops.get(m, ())}
             for n in nodes}
    majority = len(nodes) // 2 + 1
    return tuple(sorted(n for n in nodes if len(hears[n]) + 1 < majority))


def faults_from_events(events: Iterable[dict]) -> list[Fault]:
    """The nemesis operations that completed, with the nodes each hit."""
    faults = []
    invoked_at: dict[str, int] = {}
    for e in events:
        if e.get("process") != "nemesis" or e.get("type") == "fail":
            continue
        if e.get("type") == "invoke":
            invoked_at[str(e.get("f"))] = int(e["time"])
            continue
        value = e.get("value")
        if isinstance(value, dict) and isinstance(value.get("drops"), dict):
            nodes = cut_off_nodes(value["drops"])
        else:
            nodes = _nodes_named(value)
        # The fault starts biting somewhere between invoke and completion (the
        # completion waits for verification); measure from the invoke, so a
        # leader elected while the nemesis verified is not taken as the old one.
        f = str(e.get("f"))
        faults.append(Fault(time=invoked_at.pop(f, int(e["time"])), f=f, nodes=nodes,
                            index=e.get("index")))
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


def _samples_by_node(events: Iterable[dict]) -> tuple[dict[str, list[dict]], list[dict]]:
    """The observer events bucketed by node, each node's in time order, and the nemesis events.

    Sorting each node's samples by time (stably) puts them in the order that
    sorting all samples by (time, node) would, and they arrive almost in
    order, so these sorts cost little. Kept as the event dicts: see `Observation`.
    """
    by_node: dict[str, list[dict]] = defaultdict(list)
    nemesis = []
    for e in events:
        process = e.get("process")
        if process == "observer":
            if "node" in e:
                by_node[e["node"]].append(e)
        elif process == "nemesis":
            nemesis.append(e)
    for samples in by_node.values():
        samples.sort(key=_time)
    return by_node, nemesis


def _read_node(node: str, samples: Sequence[dict]) -> NodeReading:
    """Leader runs, backward steps and leadership changes in one node's samples (time order).

    Reads the observer's event dicts directly, as `_observation` would read
    them, and builds objects only when something changes: this loop runs once
    per sample and is the checker's hot path.
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
    latest_ret: list[float]  # latest_ret[i]: the latest return among ops[:i + 1]


def _served_ops_by_node(ops: Iterable[Operation],
                        windows: Iterable[tuple[int, int]]) -> dict[str, ServedOps]:
    """The acknowledged operations that overlap any of the [lo, hi] `windows`, by node.

    An hour's run has ~720,000 operations and few windows, so keep only the
    ones that can be served in a window before sorting and indexing them.
    """
    # The windows merged into disjoint ones in order: an op [call, ret] meets
    # one iff the last window starting at or before its ret ends at or after its call.
    los: list[int] = []
    his: list[int] = []
    for lo, hi in sorted(windows):
        if his and lo <= his[-1]:
            his[-1] = max(his[-1], hi)
        else:
            los.append(lo)
            his.append(hi)
    acked = []
    for op in ops:
        if op.status == "ok" and op.node is not None:
            w = bisect_right(los, op.ret) - 1
            if w >= 0 and his[w] >= op.call:
                acked.append(op)
    acked.sort(key=attrgetter("call"))
    by_node: dict[str, list[Operation]] = defaultdict(list)
    for op in acked:
        by_node[op.node].append(op)
    return {node: ServedOps(lst, list(map(attrgetter("call"), lst)),
                            list(accumulate(map(attrgetter("ret"), lst), max)))
            for node, lst in by_node.items()}


def _served_in(served: dict[str, ServedOps], node: str, lo: int, hi: int) -> list[Operation]:
    """Acknowledged operations that `node` served and that overlap [lo, hi], in call order."""
    s = served.get(node)
    if s is None:
        return []
    # In call order, every op that overlaps has call <= hi. Of those, the ones
    # still running at lo overlap, and none comes before the first op by whose
    # end some op had returned at or after lo. Bisecting that running maximum
    # keeps each overlap from scanning every op the node served before it.
    first = bisect_left(s.latest_ret, lo)
    end = bisect_right(s.calls, hi)
    return [op for op in s.ops[first:end] if op.ret >= lo]


def _timeline(leader_changes: Sequence[tuple[int, str, int | None]], first_time: int | None,
              last_time: int | None, intervals: Sequence[LeaderInterval],
              faults: Sequence[Fault], ops: Sequence[Operation]) -> dict:
    """Elections, time without a leader, and failovers after faults that hit the leader.

    `leader_changes` are every node's, in the order of a sort of all samples
    by (time, node); `first_time` and `last_time` bound the samples.
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
    # When acknowledged writes returned, sorted; built on the first failover
    # only, as most faults miss the leader.
    write_rets: list[float] | None = None
    failovers = []
    for fault in faults:
        if fault.f not in LEADER_FAULTS:
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
        first_write = None
        if new_leader_at is not None:
            if write_rets is None:
                write_rets = [op.ret for op in ops if op.status == "ok" and op.f in WRITES]
                write_rets.sort()
            w = bisect_left(write_rets, new_leader_at)
            if w < len(write_rets):
                first_write = write_rets[w]
        failovers.append({
            "fault": fault.f, "time": fault.time, "old_leader": before, "new_leader": new_leader,
            "fault_index": fault.index,
            "leader_after_ns": None if new_leader_at is None else new_leader_at - fault.time,
            "write_after_ns": None if first_write is None else int(first_write - fault.time),
        })
    return {
        "leaders_per_term": {str(t): n for t, n in sorted(leaders_per_term.items())},
        "elections": len(leaders_per_term),
        "no_leader_ns": no_leader_ns,
        "failovers": failovers,
    }


def check(events: Sequence[dict], ops: Sequence[Operation]) -> dict:
    """Split-brain verdict from a history's raw events and its paired client operations.

    Anomalies: two leaders in one term; dual-serving (two nodes that both
    believed they led, in different terms, and both acknowledged client
    operations while they overlapped); a node's term or commit index going
    backwards. Overlap alone is legal in Raft and is reported, not judged.
    """
    samples_by_node, nemesis = _samples_by_node(events)
    readings = [_read_node(node, samples) for node, samples in samples_by_node.items()]
    faults = sorted(faults_from_events(nemesis), key=attrgetter("time"))
    intervals = sorted((i for r in readings for i in r.intervals), key=_start_and_node)
    # Merged in the order of a sort of all samples by (time, node): the sorts
    # are stable and each node's lists are in its sample order.
    went_back = sorted((a for r in readings for a in r.anomalies), key=itemgetter("time", "node"))
    leader_changes = sorted((c for r in readings for c in r.leader_changes), key=itemgetter(0, 1))
    samples = samples_by_node.values()
    first_time = min((s[0]["time"] for s in samples), default=None)
    last_time = max((s[-1]["time"] for s in samples), default=None)

    anomalies = _two_leaders_one_term(intervals)

    pairs = _overlaps(intervals)
    # Client operations matter here only if leaders overlapped.
    served = _served_ops_by_node(ops, [(lo, hi) for _, _, lo, hi in pairs]) if pairs else {}

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
    return {
        "checker": "split-brain",
        "valid": not anomalies,
        "anomalies": anomalies,
        "overlaps": overlaps,
        "observations": sum(map(len, samples)),
        "timeline": _timeline(leader_changes, first_time, last_time, intervals, faults, ops),
    }


def _op_ref(op: Operation) -> dict:
    return {"index": op.index, "process": op.process, "f": op.f, "key": op.key, "value": op.value,
            "output": op.output, "call": op.call,
            "ret": None if op.ret == END_OF_TIME else op.ret}
