"""The report's data: a run folder in, one JSON-ready dict out, compact enough to embed 100,000 operations.

Everything the page draws comes from here, so it is tested without a browser.
Times on the page are milliseconds since the test started (the history's
monotonic clock, ns / 1e6), rounded to 0.01 ms. Client operations are stored
column-wise (one array per field) because a list of objects with repeated key
names would be three times the size at 100k operations.
"""

from __future__ import annotations

import json
import re
import statistics
from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from checkers.registry import read_verdicts
from checkers.verdict import Anomaly
from checkers.verdict import short as _short
from history.bounded import iter_lines, loads_json, read_text
from history.events import Event, History, event_from_dict, read_history
from history.formats import FormatError
from history.operation import END_OF_TIME, Operation
from nemesis.family import FaultFamily
from nemesis.registry import families

STATUSES = ("ok", "fail", "info")
ROLES = ("down", "follower", "precandidate", "candidate", "leader", "other")
# Node log lines shown on each side of an anomaly's interval.
LOG_WINDOW_MS = 2000.0
LOG_LINES_PER_ANOMALY = 80


class ReportError(Exception):
    """The folder cannot be reported on (no history, unreadable results): one line for the user."""


def ms(ns: float) -> float:
    return round(ns / 1e6, 2)


@dataclass(frozen=True)
class RunInputs:
    """What the renderer reads from a run folder."""

    path: Path
    results: dict[str, Any]
    spec_text: str
    history: History
    logs: dict[str, list[str]]  # node -> lines


def load_run(run_dir: str | Path, history: History | None = None) -> RunInputs:
    """Everything a report is made from; `history` if the caller has already read the file."""
    path = Path(run_dir).resolve()  # store/latest is a symlink: name the real run
    if not path.is_dir():
        raise ReportError(f"{path}: not a run folder (no such directory)")
    hist = path / "history.jsonl"
    if not hist.is_file():
        raise ReportError(f"{path}: not a run folder (no history.jsonl)")
    results: dict[str, Any] = {}
    if (path / "results.json").exists():
        try:
            results = loads_json(read_text(path / "results.json"))
        except FormatError as e:
            raise ReportError(str(e)) from None
        except ValueError as e:
            raise ReportError(f"{path / 'results.json'}: unreadable ({' '.join(str(e).split())[:200]})") from None
        if not isinstance(results, dict):
            raise ReportError(f"{path / 'results.json'}: expected a JSON object, got {type(results).__name__}")
    try:
        spec_text = read_text(path / "spec.yaml", 1024 * 1024) if (path / "spec.yaml").exists() else ""
    except FormatError as e:
        raise ReportError(str(e)) from None
    # check=False: a report of a broken history is still worth having; the
    # results say it is invalid.
    try:
        if history is None:
            history = read_history(hist, check=False)
    except FormatError:
        # A harness killed mid-write leaves a torn last line: report what can be read.
        history = History(tuple(_readable_events(hist)), str(hist))
    logs = {}
    logs_dir = path / "logs"
    if logs_dir.is_dir():
        for f in sorted(logs_dir.glob("*.log")):
            try:
                logs[f.stem] = f.read_text(errors="replace").splitlines()
            except OSError:
                continue
    return RunInputs(path, results, spec_text, history, logs)


def _readable_events(path: Path) -> list[Event]:
    events = []
    try:
        for n, raw in iter_lines(path):
            try:
                events.append(event_from_dict(loads_json(raw), n, str(path)))
            except (ValueError, FormatError):
                continue
    except FormatError as e:
        raise ReportError(str(e)) from None
    return events


# ---------------------------------------------------------------------------
# Client operations


def describe(op: Operation) -> str:
    """A few characters for a tooltip: 'w 4', 'r 3', 'cas 1→4', 'add 17'."""
    if op.f == "read":
        return "r " + (_short(op.output) if op.status == "ok" else "?")
    if op.f == "write":
        return "w " + _short(op.value)
    if op.f == "cas" and isinstance(op.value, list) and len(op.value) == 2:
        return f"cas {_short(op.value[0])}→{_short(op.value[1])}"
    return f"{op.f} {_short(op.value)}" if op.value is not None else op.f


def operations_table(history: History) -> tuple[dict[str, Any], dict[int, int]]:
    """Client operations as columns, sorted by call; and history index -> row.

    An `info` op's `r` is the time its unknown outcome was recorded, and `o`
    marks it open-ended (it may take effect any time after): the page draws it
    to the right edge. A never-completed op has r = -1.
    """
    ops = sorted(history.client_operations(), key=lambda o: (o.call, o.index))
    times = {e.index: e.time for e in history.events}
    procs = sorted({o.process for o in ops}, key=lambda p: (isinstance(p, str), p if not isinstance(p, str) else 0, str(p)))
    lane = {p: i for i, p in enumerate(procs)}
    fs: dict[str, int] = {}
    keys: dict[Any, int] = {}
    nodes: dict[str, int] = {}
    cols: dict[str, list] = {c: [] for c in ("i", "p", "c", "r", "f", "s", "k", "n", "d")}
    rows: dict[int, int] = {}
    for row, o in enumerate(ops):
        rows[o.index] = row
        if o.ret != END_OF_TIME:
            ret = ms(o.ret)
        elif o.complete_index is not None and o.complete_index in times:
            ret = ms(times[o.complete_index])
        else:
            ret = -1
        key = json.dumps(o.key) if not isinstance(o.key, (str, type(None))) else o.key
        cols["i"].append(o.index)
        cols["p"].append(lane[o.process])
        cols["c"].append(ms(o.call))
        cols["r"].append(ret)
        cols["f"].append(fs.setdefault(o.f, len(fs)))
        cols["s"].append(STATUSES.index(o.status))
        cols["k"].append(-1 if key is None else keys.setdefault(key, len(keys)))
        cols["n"].append(-1 if o.node is None else nodes.setdefault(o.node, len(nodes)))
        cols["d"].append(describe(o))
    table = {
        **cols,
        "processes": [str(p) for p in procs],
        "fs": list(fs),
        "keys": list(keys),
        "nodes": list(nodes),
    }
    return table, rows


def packed_operations(table: dict[str, Any]) -> dict[str, Any]:
    """The table as the page embeds it: calls and history indices as differences from the
    previous row (sorted by call, so small numbers), returns as latencies. A third less to
    download and parse at 100k ops; the page's script undoes it once (`unpack` in report.js)."""
    calls, rets, idx = table["c"], table["r"], table["i"]
    out = dict(table)
    out["c"] = [round(c - (calls[k - 1] if k else 0.0), 2) for k, c in enumerate(calls)]
    out["r"] = [-1 if r < 0 else round(r - c, 2) for c, r in zip(calls, rets, strict=True)]
    out["i"] = [i - (idx[k - 1] if k else 0) for k, i in enumerate(idx)]
    out["packed"] = True
    return out


def unpack_operations(ops: dict[str, Any]) -> dict[str, Any]:
    """The inverse of packed_operations (for tests; the page does the same in report.js)."""
    if not ops.get("packed"):
        return ops
    out = dict(ops)
    c, i = 0.0, 0
    calls, idx = [], []
    for dc, di in zip(ops["c"], ops["i"], strict=True):
        c, i = round(c + dc, 2), i + di
        calls.append(c)
        idx.append(i)
    out["c"], out["i"] = calls, idx
    out["r"] = [-1 if lat < 0 else round(c + lat, 2) for c, lat in zip(calls, ops["r"], strict=True)]
    del out["packed"]
    return out


# ---------------------------------------------------------------------------
# Faults and leadership


def fault_tables() -> tuple[dict[str, FaultFamily], dict[str, FaultFamily]]:
    """The registered fault families by the ops that start one and by the op that ends it (heal ends all)."""
    fams = families().values()
    return ({f: fam for fam in fams for f in fam.starts}, {fam.stop_op: fam for fam in fams})


def fault_bands(history: History, end_ms: float) -> list[dict[str, Any]]:
    """One band per fault: from its start op's invoke to the invoke of the op
    that ends it (or the heal, or the end of the history). Which nodes it hit
    come from the start op's completion (the nodes really hit), else its invoke."""
    starts, ends = fault_tables()
    bands: list[dict[str, Any]] = []
    open_: dict[str, dict[str, Any]] = {}
    for e in history.nemesis_events():
        fam = starts.get(e.f)
        family = fam.name if fam else None
        if e.type == "invoke":
            ending = ends[e.f].name if e.f in ends else None
            if ending and ending in open_:
                open_.pop(ending)["end"] = ms(e.time)
            if e.f == "heal":
                for b in open_.values():
                    b["end"] = ms(e.time)
                open_.clear()
                bands.append({"family": "heal", "label": "heal", "start": ms(e.time), "end": ms(e.time),
                              "nodes": [], "index": e.index, "status": None})
            if family:
                if family in open_:  # a second start (strobe after bump): the first ends here
                    open_.pop(family)["end"] = ms(e.time)
                band = {"family": family, "label": fam.label(e.f, e.value), "start": ms(e.time),
                        "end": None, "nodes": fam.nodes_hit(e.f, e.value), "index": e.index, "status": None}
                open_[family] = band
                bands.append(band)
            continue
        if fam and family in open_:
            band = open_[family]
            band["status"] = e.type
            hit = fam.nodes_hit(e.f, e.value)
            if hit:
                band["nodes"] = hit
            label = fam.label(e.f, e.value)
            if label != e.f:  # the completion may say more (how a vote-crash ended)
                band["label"] = label
            if e.type == "fail":  # certainly did not happen: no band
                open_.pop(family)
                bands.remove(band)
    for b in open_.values():
        b["end"] = end_ms
    for b in bands:
        if b["end"] is None:
            b["end"] = end_ms
    return bands


def leader_lanes(history: History) -> dict[str, list[list]]:
    """Per node, runs of samples with the same (role, term): [start, end, role code, term].
    A run lasts until the node's next different sample; `down` means it did not answer."""
    lanes: dict[str, list[list]] = defaultdict(list)
    for e in history.observations():
        if e.node is None:
            continue
        v = e.value if isinstance(e.value, dict) else None
        if v is None or e.type != "ok":
            role, term = "down", -1
        else:
            role = v.get("role") if v.get("role") in ROLES else "other"
            term = v.get("term") if isinstance(v.get("term"), int) else -1
        code = ROLES.index(role)
        t = ms(e.time)
        runs = lanes[e.node]
        if runs and runs[-1][2] == code and runs[-1][3] == term:
            runs[-1][1] = t
        else:
            if runs:
                runs[-1][1] = t
            runs.append([t, t, code, term])
    return dict(sorted(lanes.items()))


def claim_lanes(results: dict[str, Any], end_ms: float) -> tuple[dict[str, list[list]], list[list]]:
    """An election run's candidates, from the mutual-exclusion checker's intervals: per candidate, runs
    [start, end, role, token] (leader while it believed it led, candidate between), and marks
    [node, start, end, kind] for overlaps ("overlap") and for work the resource rejected ("rejected").
    The candidates' own beliefs, not probe samples: a paused holder still believes, and is drawn so."""
    me = (results.get("checkers") or {}).get("mutual-exclusion") or {}
    lanes: dict[str, list[list]] = defaultdict(list)
    lead, cand = ROLES.index("leader"), ROLES.index("candidate")
    for i in sorted(me.get("intervals") or [], key=lambda i: (i.get("node"), i.get("start") or 0)):
        node, start = str(i.get("node")), ms(i.get("start") or 0)
        end = ms(i["end"]) if isinstance(i.get("end"), (int, float)) else end_ms
        runs = lanes[node]
        runs.append([runs[-1][1] if runs else 0.0, start, cand, -1])
        runs.append([start, end, lead, i.get("token") if isinstance(i.get("token"), int) else -1])
    for node in me.get("candidates") or ():
        lanes.setdefault(str(node), [])  # one that never led still has its lane
    for runs in lanes.values():
        runs.append([runs[-1][1] if runs else 0.0, end_ms, cand, -1])
    marks: list[list] = []
    for o in me.get("overlaps") or []:
        for n in o.get("nodes") or ():
            marks.append([str(n), ms(o["start"]), ms(o["end"]), "overlap"])
    return dict(lanes), marks


def rejected_marks(table: dict[str, Any]) -> list[list]:
    """[candidate, t, t, "rejected"] for every unit of leader work the fenced resource refused."""
    fail, work = STATUSES.index("fail"), table["fs"].index("work") if "work" in table["fs"] else -1
    procs = table["processes"]
    return [[table["nodes"][table["n"][i]], table["c"][i], table["c"][i], "rejected"]
            for i in range(len(table["c"])) if table["f"][i] == work and table["s"][i] == fail
            and table["n"][i] >= 0 and procs[table["p"][i]] == "resource"]


# ---------------------------------------------------------------------------
# Anomalies: one sentence each, an interval and the ops to highlight


def _focus(calls: list[float], rets: list[float], rows: list[int]) -> list[float] | None:
    if not rows:
        return None
    lo = min(calls[r] for r in rows)
    hi = max(max(calls[r], rets[r]) for r in rows)
    return [lo, hi]


def anomalies(results: dict[str, Any], rows: dict[int, int], op_calls: list[float],
              op_rets: list[float] | None = None) -> list[dict[str, Any]]:
    """Every anomaly the checkers found, in a shape the page draws:
    {id, checker, type, sentence, start, end (ms), rows (ops to highlight), nodes, focus, evidence}."""
    out: list[dict[str, Any]] = []
    op_rets = op_rets if op_rets is not None else op_calls
    for v in read_verdicts(results):
        if v.valid is False:
            for a in v.anomalies:
                out.append(_drawn(a, f"anomaly-{len(out) + 1}", v.checker, rows, op_calls, op_rets))
    return out


def _drawn(a: Anomaly, id: str, checker: str, rows: dict[int, int], calls: list[float], rets: list[float]) -> dict[str, Any]:
    """One anomaly on the page's axis: rows for its operations, ms for its times, where to look first."""
    hl = sorted({rows[i] for i in a.operations if i in rows})
    start = None if a.start is None else ms(a.start)
    end = None if a.end is None else ms(a.end)
    if start is None and hl:
        start = min(calls[r] for r in hl)
    if end is None:
        end = start
    ev = a.evidence
    # Where to look first: a span the checker names, or the operations it names, else all of it.
    focus = [start, end] if start is not None else None
    if isinstance(ev.get("focus"), list) and len(ev["focus"]) == 2:
        focus = [ms(ev["focus"][0]), ms(ev["focus"][1])]
    elif "focus_operations" in ev:
        focus = _focus(calls, rets, [rows[i] for i in ev["focus_operations"] if i in rows])
    drawn = {"id": id, "checker": checker, "type": a.kind, "sentence": a.summary, "start": start, "end": end, "rows": hl,
             "nodes": list(a.nodes), "focus": focus, "evidence": dict(ev)}
    if a.kind == "not-linearizable":  # the page marks the prefix, the blocked op and the last write
        drawn.update(blocked=[rows[b["op"]] for b in ev.get("blocked") or []
                              if isinstance(b, dict) and b.get("op") in rows],
                     prefix=[rows[i] for i in ev.get("linearized_prefix") or [] if i in rows],
                     key=ev.get("key"), state=ev.get("state_after_prefix"),
                     last_write=rows.get(ev.get("last_write", -1)))
    return drawn


def served_during(table: dict[str, Any], nodes: list[str], lo: float, hi: float) -> dict[str, list[int]]:
    """Rows of the ops each node acknowledged (ok) and was asked for in [lo, hi] ms: what two leaders
    served, by the split-brain checker's rule (checkers.election `_served_in`)."""
    want = {table["nodes"].index(n): n for n in nodes if n in table["nodes"]}
    out: dict[str, list[int]] = {n: [] for n in nodes}
    calls, stat, node = table["c"], table["s"], table["n"]
    for row in range(bisect_left(calls, lo), bisect_right(calls, hi)):
        if stat[row] == 0 and node[row] in want:
            out[want[node[row]]].append(row)
    return out


# ---------------------------------------------------------------------------
# Node logs on the run's time axis

_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)\s")


def clock_offsets(history: History) -> dict[str, float]:
    """Per node, wall-clock seconds minus run seconds, from the observer's samples.

    How log times are mapped: a raftkv log line starts with the node's wall
    clock (UTC, ms). Each status sample carries the same node's `wall_time`
    (epoch seconds) and the harness's run time of the sample, so the median of
    (wall_time - run time) over a node's samples turns its log times into run
    times. Per node, so a node whose clock the nemesis skewed is mapped by its
    own (skewed) clock; the median ignores the short strobes. The error is the
    sample's round trip, a few ms.
    """
    diffs: dict[str, list[float]] = defaultdict(list)
    for e in history.observations():
        v = e.value
        if e.node and isinstance(v, dict) and isinstance(v.get("wall_time"), (int, float)):
            diffs[e.node].append(v["wall_time"] - e.time / 1e9)
    return {n: statistics.median(d) for n, d in diffs.items() if d}


def log_entries(logs: dict[str, list[str]], offsets: dict[str, float], fallback: float | None) -> list[list]:
    """Every log line with a time: [run ms, node, text], sorted by time. A node with
    no samples uses `fallback` (the median offset of the others)."""
    out = []
    for node, lines in logs.items():
        off = offsets.get(node, fallback)
        if off is None:
            continue
        for line in lines:
            m = _LOG_TIME.match(line)
            if not m:
                continue
            try:
                wall = datetime.fromisoformat(m.group(1)).replace(tzinfo=UTC).timestamp()
            except ValueError:
                continue
            out.append([round((wall - off) * 1000, 1), node, line[:400]])
    out.sort(key=lambda x: x[0])
    return out


def logs_near(entries: list[list], start: float, end: float) -> list[list]:
    """Log lines within LOG_WINDOW_MS of [start, end] (or, if fewer than 3, the 5 nearest on
    each side), at most LOG_LINES_PER_ANOMALY, the ones nearest the interval first kept."""
    times = [e[0] for e in entries]
    lo = bisect_left(times, start - LOG_WINDOW_MS)
    hi = bisect_right(times, end + LOG_WINDOW_MS)
    if hi - lo < 3:
        # A quiet stretch: the nearest lines on each side still say what the nodes last did.
        lo, hi = max(0, min(lo, bisect_left(times, start)) - 5), min(len(entries), max(hi, bisect_right(times, end)) + 5)
    window = entries[lo:hi]
    if len(window) > LOG_LINES_PER_ANOMALY:
        def dist(e: list) -> float:
            return 0.0 if start <= e[0] <= end else min(abs(e[0] - start), abs(e[0] - end))
        keep = sorted(window, key=dist)[:LOG_LINES_PER_ANOMALY]
        window = sorted(keep, key=lambda e: e[0])
    return window


# ---------------------------------------------------------------------------
# The whole page's data


def report_data(inputs: RunInputs) -> dict[str, Any]:
    """Everything the page needs, JSON-ready."""
    results = inputs.results
    history = inputs.history
    table, rows = operations_table(history)
    last = max((e.time for e in history.events), default=0)
    end_ms = ms(last)
    faults = fault_bands(history, end_ms)
    lanes = leader_lanes(history)
    claims, marks = claim_lanes(results, end_ms)
    lanes.update(claims)
    marks += rejected_marks(table)
    found = anomalies(results, rows, table["c"], table["r"])
    # Rank within its checker: the top of the page lists a few per checker, the rest by count.
    per_checker: dict[str, int] = defaultdict(int)
    for a in found:
        a["rank"] = per_checker[a["checker"]]
        per_checker[a["checker"]] += 1
    for a in found:
        a["of"] = per_checker[a["checker"]]
    for a in found:
        if a["type"] in ("two-leaders-one-term", "dual-serving") and len(a["nodes"]) > 1 and a.get("focus"):
            a["served"] = served_during(table, a["nodes"], *a["focus"])
            a["rows"] = sorted(set(a["rows"]) | {r for lst in a["served"].values() for r in lst})
    offsets = clock_offsets(history)
    fallback = statistics.median(offsets.values()) if offsets else None
    entries = log_entries(inputs.logs, offsets, fallback)
    for a in found:
        lo, hi = a.get("focus") or (a["start"], a["end"])
        a["logs"] = logs_near(entries, lo or 0.0, hi or lo or 0.0)
    nodes = sorted(set(lanes) | set(inputs.logs) | set(table["nodes"]))
    phases = (results.get("run") or {}).get("phases") or {}
    return {
        "test": results.get("test") or inputs.path.parent.name,
        "run": inputs.path.name,
        "valid": results.get("valid", "unknown"),
        "exit_code": results.get("exit_code"),
        "status": results.get("status"),
        "seed": results.get("seed"),
        "command": results.get("command") or f"splitbrain run --spec {inputs.path / 'spec.yaml'}",
        "end": end_ms,
        "nodes": nodes,
        "phases": {k: round(v * 1000, 1) for k, v in phases.items() if isinstance(v, (int, float))},
        "ops": table,
        "faults": faults,
        "leaders": lanes,
        "marks": marks,
        "claim_nodes": sorted(claims),
        "roles": list(ROLES),
        "anomalies": found,
        "log_lines": len(entries),
        "log_offsets": offsets,
    }
