"""Split-brain and election checking: observer samples and client operations in, verdict out.

The observer records what each node believes (role, term, leader, commit
index) about every 50 ms. From those samples alone we can prove some
anomalies outright (two leaders in one term), and together with the client
operations we can show the one that hurts users: two nodes that both believe
they lead *and* both acknowledge client operations at the same time.

Everything here is a pure function of the history, linear in its length
after one sort, so it runs first and fast.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from operator import itemgetter
from typing import Any, NamedTuple

from checkers.operation import END_OF_TIME, Operation

# Faults after which we measure how long the cluster took to recover a leader.
LEADER_FAULTS = frozenset({"kill", "pause", "start-partition"})
WRITES = frozenset({"write", "cas", "put", "add", "append"})


class Observation(NamedTuple):
    """One status sample: what `node` believed at `time` (ns). `up` False = no answer.

    A NamedTuple rather than a frozen dataclass: an hour's run has ~360,000
    samples and building frozen dataclasses is the checker's largest cost.
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
    found = observations_from_events((event,))
    return found[0] if found else None


def observations_from_events(events: Iterable[dict]) -> list[Observation]:
    """Every status sample in the events, as `observation_from_event` reads them.

    Written out as one loop because it is the checker's hottest path (an
    hour's run holds about 360,000 samples).
    """
    out = []
    append = out.append
    # tuple.__new__ on a ready tuple skips NamedTuple's argument handling.
    new, cls = tuple.__new__, Observation
    for event in events:
        if event.get("process") != "observer" or "node" not in event:
            continue
        value = event.get("value")
        if value.__class__ is not dict:
            append(new(cls, (event["time"], event["node"], False, None, None, None, None,
                             event.get("index"))))
            continue
        get = value.get
        term = get("term")
        commit = get("commit_index")
        append(new(cls, (event["time"], event["node"], True, get("role"),
                      term if term.__class__ is int else None, get("leader"),
                      commit if commit.__class__ is int else None, event.get("index"))))
    return out


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


def leader_intervals(observations: Sequence[Observation]) -> list[LeaderInterval]:
    """Maximal runs of consecutive samples in which one node said it led one term.

    An interval runs from the first to the last sample of the run: we claim
    no more than was observed, so overlaps found are real overlaps.
    """
    by_node: dict[str, list[Observation]] = defaultdict(list)
    for o in observations:
        by_node[o.node].append(o)
    intervals = []
    for node, samples in by_node.items():
        run: list[Observation] = []
        for o in samples:
            leading = o.up and o.role == "leader" and o.term is not None
            if run and (not leading or o.term != run[0].term):
                intervals.append(_interval(node, run))
                run = []
            if leading:
                run.append(o)
        if run:
            intervals.append(_interval(node, run))
    intervals.sort(key=lambda i: (i.start, i.node))
    return intervals


def _interval(node: str, run: list[Observation]) -> LeaderInterval:
    return LeaderInterval(node=node, term=run[0].term, start=run[0].time, end=run[-1].time,
                          first_index=run[0].index, last_index=run[-1].index)


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


def _served_in(ops_by_node: dict[str, list[Operation]], starts: dict[str, list[float]],
               node: str, lo: int, hi: int) -> list[Operation]:
    """Acknowledged operations that `node` served and that overlap [lo, hi]."""
    ops = ops_by_node.get(node, [])
    # Sorted by call, so every op that overlaps has call <= hi; of those,
    # the ones still running at lo overlap.
    end = bisect_right(starts[node], hi) if ops else 0
    return [op for op in ops[:end] if op.ret >= lo]


def _monotonic_per_node(observations: Sequence[Observation]) -> list[dict]:
    """A node whose term or commit index went backwards lost state it had persisted."""
    anomalies = []
    last: dict[str, Observation] = {}
    last_commit: dict[str, Observation] = {}
    for o in observations:
        if not o.up:
            continue
        prev = last.get(o.node)
        if o.term is not None:
            if prev is not None and prev.term is not None and o.term < prev.term:
                anomalies.append({
                    "type": "term-decreased", "node": o.node,
                    "from": prev.term, "to": o.term, "time": o.time,
                    "observations": [prev._asdict(), o._asdict()],
                    "summary": f"{o.node}: term went back from {prev.term} to {o.term} "
                               "(it did not persist its term)",
                })
            last[o.node] = o
        prevc = last_commit.get(o.node)
        if o.commit_index is not None:
            if prevc is not None and o.commit_index < prevc.commit_index:
                anomalies.append({
                    "type": "commit-index-decreased", "node": o.node,
                    "from": prevc.commit_index, "to": o.commit_index, "time": o.time,
                    "observations": [prevc._asdict(), o._asdict()],
                    "summary": f"{o.node}: commit index went back from {prevc.commit_index} "
                               f"to {o.commit_index}",
                })
            last_commit[o.node] = o
    return anomalies


def _timeline(observations: Sequence[Observation], intervals: Sequence[LeaderInterval],
              faults: Sequence[Fault], ops: Sequence[Operation]) -> dict:
    leaders_per_term: dict[int, list[str]] = defaultdict(list)
    for i in intervals:
        if i.node not in leaders_per_term[i.term]:
            leaders_per_term[i.term].append(i.node)

    # Time with no leader: between consecutive sample instants, no node said
    # it led. Sampled, so it is accurate to the observer's period.
    no_leader_ns = 0
    # (time, node, term) of the newest-term leader whenever that changes: a
    # deposed leader that has not noticed yet does not count as "the" leader.
    changes: list[tuple[int, str | None, int]] = []
    leading: dict[str, int] = {}  # node -> term, for nodes that lead right now
    prev_time = None
    leaderless_since = None
    top: tuple[str | None, int] = (None, -1)
    for o in observations:
        # Most samples repeat what the node said last time: only a change to
        # the set of leaders can change who "the" leader is.
        if o.up and o.role == "leader":
            term = o.term if o.term is not None else -1
            changed = leading.get(o.node) != term
            leading[o.node] = term
        else:
            changed = leading.pop(o.node, None) is not None
        if changed:
            top = max(leading.items(), key=lambda kv: kv[1]) if leading else (None, -1)
            if leaderless_since is not None and leading:
                no_leader_ns += o.time - leaderless_since
                leaderless_since = None
            if not changes or changes[-1][1:] != top:
                changes.append((o.time, *top))
        if not leading and leaderless_since is None:
            leaderless_since = o.time
        prev_time = o.time
    if leaderless_since is not None and prev_time is not None:
        no_leader_ns += prev_time - leaderless_since

    times = [c[0] for c in changes]
    writes: list[Operation] | None = None  # built on the first failover only: most faults miss the leader
    write_rets: list[float] = []
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
            if writes is None:
                writes = sorted((op for op in ops if op.status == "ok" and op.f in WRITES),
                                key=lambda op: op.ret)
                write_rets = [op.ret for op in writes]
            w = bisect_left(write_rets, new_leader_at)
            if w < len(writes):
                first_write = writes[w].ret
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
    observations = observations_from_events(events)
    observations.sort(key=itemgetter(0, 1))  # (time, node)
    faults = sorted(faults_from_events(events), key=lambda f: f.time)
    intervals = leader_intervals(observations)

    anomalies = _two_leaders_one_term(intervals)

    pairs = _overlaps(intervals)
    ops_by_node: dict[str, list[Operation]] = defaultdict(list)
    if pairs:  # only then do client operations matter here
        for op in sorted((op for op in ops if op.status == "ok" and op.node is not None),
                         key=lambda op: op.call):
            ops_by_node[op.node].append(op)
    starts = {n: [op.call for op in lst] for n, lst in ops_by_node.items()}

    overlaps = []
    for a, b, lo, hi in pairs:
        served_a = _served_in(ops_by_node, starts, a.node, lo, hi)
        served_b = _served_in(ops_by_node, starts, b.node, lo, hi)
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

    anomalies.extend(_monotonic_per_node(observations))
    return {
        "checker": "split-brain",
        "valid": not anomalies,
        "anomalies": anomalies,
        "overlaps": overlaps,
        "observations": len(observations),
        "timeline": _timeline(observations, intervals, faults, ops),
    }


def _op_ref(op: Operation) -> dict:
    return {"index": op.index, "process": op.process, "f": op.f, "key": op.key, "value": op.value,
            "output": op.output, "call": op.call,
            "ret": None if op.ret == END_OF_TIME else op.ret}
