"""Did any member follow an impostor? From the observer's samples and the nemesis's facts; pure.

The impostor fault (nemesis/impostor.py) records, in its start's fault facts,
the id its rogue claims, whether that id is a member's, and the term it
campaigns in: far above any term the members had (`TERM_LEAD` ahead). Then:

- a member observed at that term or beyond took it from the impostor (no
  election gets there): it followed a node without the cluster key, and
  every term after is the impostor's doing;
- a member naming as its leader an id that is no member's heard it out too.

A member that names the claimed *member* id as leader at a normal term is
not evidence (the real member may lead then), so with a member's id and no
term (a target whose program cannot be told one) only the term test cannot
run: `impostors_from_events` keeps the term None and the check says nothing
about it.

Each member that followed gives one anomaly, at its first such sample, with
the client operations it acknowledged from then on (what users got from a
cluster whose terms an impostor had set).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple


class Impostor(NamedTuple):
    time: int  # when its start was invoked (ns)
    id: str
    member: bool  # the id is a member's
    term: int | None  # the term it campaigns in; None: unknown
    index: int | None  # the start's completion in the history


def impostors_from_events(nemesis_events: Iterable[Mapping[str, Any]]) -> list[Impostor]:
    """The impostors started, from the nemesis completions' fault facts ({"impostor": {"id", "member", "term"}})."""
    out = []
    invoked: dict[str, int] = {}
    for e in nemesis_events:
        if e.get("type") == "invoke":
            invoked[str(e.get("f"))] = int(e["time"])
            continue
        facts = e.get("fault")
        imp = facts.get("impostor") if isinstance(facts, Mapping) else None
        if e.get("type") == "fail" or not isinstance(imp, Mapping) or not isinstance(imp.get("id"), str):
            continue
        term = imp.get("term")
        out.append(Impostor(invoked.pop(str(e.get("f")), int(e["time"])), imp["id"], bool(imp.get("member")),
                            term if term.__class__ is int else None, e.get("index")))
    return out


def followed(samples: Mapping[str, Sequence[Mapping[str, Any]]], impostors: Sequence[Impostor],
             ops: Sequence[Any], members: Iterable[str]) -> list[dict]:
    """One anomaly per member that followed an impostor (see the module docstring).

    `samples`: each node's observer events; `ops`: the client operations
    (history.operation.Operation); `members`: the nodes' ids.
    """
    if not impostors:
        return []
    members = set(members) | set(samples)
    first = min(i.time for i in impostors)
    floor = min((i.term for i in impostors if i.term is not None), default=None)
    strangers = {i.id for i in impostors if not i.member and i.id not in members}
    found: dict[str, tuple[dict, Impostor, str]] = {}
    for node, events in samples.items():
        for e in events:
            value = e["value"]
            if value.__class__ is not dict or e["time"] < first:
                continue
            term, leader = value.get("term"), value.get("leader")
            why = None
            if floor is not None and term.__class__ is int and term >= floor:
                why = "term"
            elif leader in strangers:
                why = "leader"
            if why is not None:
                found[node] = (e, _cause(impostors, e, why), why)
                break  # a node's samples are in time order: its first is the one
    return [_anomaly(node, e, imp, why, ops) for node, (e, imp, why) in sorted(found.items())]


def _cause(impostors: Sequence[Impostor], e: Mapping[str, Any], why: str) -> Impostor:
    """The impostor behind a sample: the latest started before it that can explain it."""
    value = e["value"]
    fits = [i for i in impostors if i.time <= e["time"] and (
        (why == "term" and i.term is not None and value.get("term") >= i.term) or
        (why == "leader" and i.id == value.get("leader")))]
    return max(fits, key=lambda i: i.time) if fits else impostors[0]


def _anomaly(node: str, e: Mapping[str, Any], imp: Impostor, why: str, ops: Sequence[Any]) -> dict:
    value = e["value"]
    at = e["time"]
    served = _acked_by(ops, node, at)
    claims = f"claiming to be {imp.id}" if imp.member else f"with the id {imp.id}, no member's"
    if why == "term":
        what = f"reached term {value.get('term')}, the impostor's ({imp.term})"
        if value.get("leader") == imp.id:
            what += f" and named {imp.id} its leader"
    else:
        what = f"named {imp.id} its leader (term {value.get('term')})"
    summary = (f"{node} followed an impostor without the cluster key ({claims}, started at "
               f"{imp.time / 1e9:.3f}s): at {at / 1e9:.3f}s it {what}")
    if served:
        summary += f"; it acknowledged {len(served)} client operation{'s' * (len(served) != 1)} from then on"
    obs = {"time": at, "node": node, "role": value.get("role"), "term": value.get("term"),
           "leader": value.get("leader"), "index": e.get("index")}
    return {"type": "impostor-followed", "node": node, "nodes": [node], "time": at,
            "impostor": imp._asdict(), "observations": [obs],
            "operations": {node: served[:20]} if served else {}, "acknowledged": len(served),
            "summary": summary}


def _acked_by(ops: Sequence[Any], node: str, since: int) -> list[dict]:
    """Client operations `node` acknowledged that returned at or after `since` (refs, in history order).
    One pass per member that followed: only a run with an anomaly pays for it."""
    return [{"index": o.index, "process": o.process, "f": o.f, "key": o.key, "value": o.value,
             "output": o.output, "call": o.call, "ret": o.ret}
            for o in ops if o.node == node and o.status == "ok" and o.ret >= since]
