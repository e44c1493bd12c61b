"""The history: reading, writing and validating the JSON Lines event log of DESIGN.md.

One event per line, append-only, flushed as it goes, so a run that dies still
leaves a readable history up to its last event. Client events pair up into
`history.operation.Operation`s; nemesis and observer events stay events, so
the report can draw faults and leadership over the operations.

Public API:
    Event                  one line of the history (frozen); .is_client
    Problem                one thing wrong with a history, with its line
    InvalidHistory         FormatError carrying every Problem (.problems)
    HistoryWriter(path)    thread-safe streaming appender: .append(...), .complete(invoke, ...)
    write_history(path, events)   write events as they are (export, tests)
    event_from_dict(d)     a decoded JSON object -> Event (FormatError if unusable)
    event_to_dict(e)       Event -> JSON-ready dict (the inverse); event_to_json(e)
    iter_events(path)      streaming reader; FormatError at the first bad line
    parse_events(text)     the same for text in memory
    validate(events)       every Problem in an event stream, in line order (one pass)
    pair_operations(evs)   client events -> Operations (invoke paired with completion)
    History                events plus .client_operations(), .nemesis_events(),
                           .observations(), .client_events(), .problems(), .keys()
    read_history(path)     read + validate; raises InvalidHistory listing every problem
    history_from_events(evs)  the same for events from another importer
"""

from __future__ import annotations

import json
import math
import os
import threading
import time as _time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from history.bounded import InputError, iter_lines, loads_json
from history.formats import FormatError
from history.operation import END_OF_TIME, UNKNOWN, Operation

TYPES = ("invoke", "ok", "fail", "info")
COMPLETIONS = ("ok", "fail", "info")
NEMESIS = "nemesis"
OBSERVER = "observer"
# Processes whose events are facts about the run, not client operations: the
# pairing rules (one open op per process, nothing after info) do not apply.
NON_CLIENT_PROCESSES = frozenset({NEMESIS, OBSERVER})

# Fields every event must carry; key, value and node are optional.
REQUIRED_FIELDS = ("index", "type", "process", "f", "time")
# An ok completion with `"unknown": true` returned a value nobody recorded (a
# read whose result was lost): its output is UNKNOWN, which matches any state,
# where `"value": null` is a read that saw nothing.
UNKNOWN_FIELD = "unknown"
KNOWN_FIELDS = frozenset(REQUIRED_FIELDS + ("key", "value", "node"))

_EMPTY: Mapping[str, Any] = MappingProxyType({})
# Indices and nanosecond times fit in 63 bits (292 years); past that, a value
# is a mistake, and math on it would overflow a float.
_MAX_COUNT = 2**63
# "Not given" for HistoryWriter.complete's value, where None is a real value.
_ECHO: Any = object()


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the history.

    `time` is nanoseconds since the test started (one monotonic clock).
    `extra` keeps every field this module does not know (an error message, a
    grudge, a leader's term) so that reading and writing again loses nothing.
    `line` is where the event was read from (1-based), for error messages and
    evidence; it is not part of the event and is never written.
    """

    index: int
    type: str
    process: Any
    f: str
    time: int | float
    key: Any = None
    value: Any = None
    node: str | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    line: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # A frozen event must not share a mutable dict with its caller.
        if not isinstance(self.extra, MappingProxyType):
            object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)) if self.extra else _EMPTY)

    @property
    def is_client(self) -> bool:
        return not is_non_client_process(self.process)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a history: where (1-based line, if known) and what."""

    line: int | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line is not None else self.message


class InvalidHistory(FormatError):
    """A history that does not keep the contract. Carries every problem found;
    its one-line message names the first and counts the rest."""

    def __init__(self, problems: list[Problem], path: str | None = None):
        self.problems = list(problems)
        first = self.problems[0]
        more = len(self.problems) - 1
        message = first.message + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")
        super().__init__(message, path, first.line)


def is_non_client_process(process: Any) -> bool:
    return isinstance(process, str) and process in NON_CLIENT_PROCESSES


# ---------------------------------------------------------------------------
# Event <-> dict


def _is_int(x: Any) -> bool:
    # bool is an int in Python, but `true` is never an index or a process.
    return isinstance(x, int) and not isinstance(x, bool)


def event_from_dict(d: Any, line: int | None = None, path: str | None = None) -> Event:
    """Build an Event from a decoded JSON object; FormatError names what is wrong.

    Checks each field's shape only; whether events fit together (pairing,
    times) is `validate`'s job, so it can report every problem at once.
    """

    def bad(message: str) -> FormatError:
        return FormatError(message, path, line)

    if not isinstance(d, dict):
        raise bad(f"an event must be a JSON object, not {type(d).__name__}")
    missing = [name for name in REQUIRED_FIELDS if name not in d]
    if missing:
        raise bad(f"missing field{'s' * (len(missing) > 1)} {', '.join(missing)}")
    index, type_, process, f, t = (d[name] for name in REQUIRED_FIELDS)
    if not _is_int(index) or not 0 <= index < _MAX_COUNT:
        raise bad(f"index must be a non-negative integer, not {index!r}")
    if not isinstance(type_, str):
        raise bad(f"type must be a string, not {type_!r}")
    if type_ not in TYPES:
        raise bad(f"unknown type {type_!r} (expected one of {', '.join(TYPES)})")
    if not (_is_int(process) or isinstance(process, str)):
        raise bad(f"process must be an integer or a string, not {process!r}")
    if not isinstance(f, str) or not f:
        raise bad(f"f must be a non-empty string, not {f!r}")
    if (not (isinstance(t, (int, float)) and not isinstance(t, bool)) or t < 0 or t >= _MAX_COUNT
            or not math.isfinite(t)):
        raise bad(f"time must be non-negative nanoseconds, not {t!r}")
    node = d.get("node")
    if node is not None and not isinstance(node, str):
        raise bad(f"node must be a string, not {node!r}")
    if UNKNOWN_FIELD in d and not isinstance(d[UNKNOWN_FIELD], bool):
        raise bad(f"unknown must be true or false, not {d[UNKNOWN_FIELD]!r}")
    extra = {k: v for k, v in d.items() if k not in KNOWN_FIELDS}
    return Event(
        index=index,
        type=type_,
        process=process,
        f=f,
        time=t,
        key=d.get("key"),
        value=d.get("value"),
        node=node,
        extra=MappingProxyType(extra) if extra else _EMPTY,
        line=line,
    )


def event_to_dict(e: Event) -> dict[str, Any]:
    """The JSON object for one event, fields in the order DESIGN.md shows them.
    `key` and `node` are left out when absent, as nemesis events have neither."""
    d: dict[str, Any] = {"index": e.index, "type": e.type, "process": e.process, "f": e.f}
    if e.key is not None:
        d["key"] = e.key
    d["value"] = e.value
    d["time"] = e.time
    if e.node is not None:
        d["node"] = e.node
    for k, v in e.extra.items():
        d.setdefault(k, v)
    return d


def event_to_json(e: Event) -> str:
    # allow_nan=False: NaN/Infinity are not JSON, and other tools would choke.
    return json.dumps(event_to_dict(e), separators=(", ", ": "), allow_nan=False)


# ---------------------------------------------------------------------------
# Writing


class HistoryWriter:
    """Appends events to a history file, one flushed JSON line each.

    Safe to call from several threads and from asyncio callbacks: index
    assignment, timestamping and the write happen under one lock, so indices
    are dense and in file order. Leave `time` out to have the writer read its
    clock under that lock, which keeps times in file order too; this is also
    conservative for linearizability (an invoke is stamped before the request
    is sent, a completion after the reply arrived). An explicit `time` older
    than the last one written is a caller bug and raises ValueError.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], int] | None = None,
        start_index: int = 0,
    ):
        self.path = os.fspath(path)
        self._file = open(self.path, "a", encoding="utf-8")
        self._lock = threading.Lock()
        self._next_index = start_index
        self._last_time: int | float = 0
        if clock is None:
            origin = _time.monotonic_ns()
            clock = lambda: _time.monotonic_ns() - origin  # noqa: E731
        self._clock = clock

    def append(
        self,
        type: str,
        process: Any,
        f: str,
        *,
        key: Any = None,
        value: Any = None,
        time: int | None = None,
        node: str | None = None,
        **extra: Any,
    ) -> Event:
        """Record one event and return it (with its index and time)."""
        if type not in TYPES:
            raise ValueError(f"unknown event type {type!r}")
        with self._lock:
            if self._file.closed:
                raise ValueError(f"history {self.path} is closed")
            t = self._clock() if time is None else time
            if t < self._last_time:
                raise ValueError(f"time {t} is before the last recorded time {self._last_time}")
            event = Event(
                index=self._next_index,
                type=type,
                process=process,
                f=f,
                time=t,
                key=key,
                value=value,
                node=node,
                extra=MappingProxyType(dict(extra)) if extra else _EMPTY,
            )
            self._file.write(event_to_json(event) + "\n")
            self._file.flush()
            self._next_index += 1
            self._last_time = t
            return event

    def complete(
        self,
        invoke: Event,
        type: str,
        *,
        value: Any = _ECHO,
        time: int | None = None,
        node: str | None = None,
        **extra: Any,
    ) -> Event:
        """Record the completion of `invoke` (ok, fail or info) with its
        process, f and key, so a completion can never mismatch its invoke.
        `value` defaults to the invoke's (a write echoes what it wrote); pass
        the result for a read."""
        if type not in COMPLETIONS:
            raise ValueError(f"a completion is ok, fail or info, not {type!r}")
        return self.append(
            type,
            invoke.process,
            invoke.f,
            key=invoke.key,
            value=invoke.value if value is _ECHO else value,
            time=time,
            node=node,
            **extra,
        )

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_history(path: str | os.PathLike[str], events: Iterable[Event]) -> None:
    """Write events as they are (indices and times kept), replacing the file."""
    with open(path, "w", encoding="utf-8") as out:
        for e in events:
            out.write(event_to_json(e) + "\n")


# ---------------------------------------------------------------------------
# Reading


def _parse_line(raw: bytes, line: int, path: str | None) -> Event | None:
    """One line of the file -> Event, or None for a blank line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"not UTF-8 text ({e.reason} at byte {e.start})", path, line) from None
    if not text.strip():
        return None
    try:
        obj = loads_json(text)
    except json.JSONDecodeError as e:
        raise FormatError(f"malformed JSON: {e.msg} at column {e.colno}", path, line) from None
    except InputError as e:
        raise FormatError(f"refused: {e}", path, line) from None
    return event_from_dict(obj, line, path)


def _iter_lines(path: str) -> Iterator[tuple[int, bytes]]:
    # A regular file or `-` only, no line past its bound (history.bounded).
    yield from iter_lines(path)


def iter_events(path: str | os.PathLike[str]) -> Iterator[Event]:
    """Stream events from a history file; FormatError at the first unreadable line.
    Blank lines are skipped. Does not validate how events fit together."""
    p = os.fspath(path)
    for n, raw in _iter_lines(p):
        event = _parse_line(raw, n, p)
        if event is not None:
            yield event


def parse_events(text: str, path: str | None = None) -> list[Event]:
    """Events from history text (for tests and for data that is not a file)."""
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        event = _parse_line(line.encode("utf-8", "surrogatepass"), n, path)
        if event is not None:
            out.append(event)
    return out


# ---------------------------------------------------------------------------
# Validation


def validate(events: Iterable[Event]) -> list[Problem]:
    """Every way the events break the history contract, in the order met.

    One pass, memory proportional to the number of processes, so it streams.
    Client rules: an invoke opens an operation, exactly one completion closes
    it (same f and key), a process with an open operation may not invoke, and a
    process whose operation ended in `info` never acts again. For everyone:
    times never go backwards and indices strictly increase.
    """
    problems: list[Problem] = []
    open_ops: dict[Any, Event] = {}
    crashed: dict[Any, Event] = {}  # process -> its info completion
    last_time: int | float | None = None
    last_index: int | None = None

    def report(e: Event, message: str) -> None:
        # Without a line (an op inside one EDN vector), the index still finds it.
        if e.line is None:
            message = f"{message} (event index {e.index})"
        problems.append(Problem(e.line, message))

    for e in events:
        if e.type not in TYPES:
            report(e, f"unknown type {e.type!r}")
            continue
        if last_time is not None and e.time < last_time:
            report(e, f"time goes backwards: {e.time} after {last_time}")
        last_time = e.time if last_time is None else max(last_time, e.time)
        if last_index is not None and e.index <= last_index:
            report(e, f"index {e.index} does not increase (previous {last_index})")
        last_index = e.index if last_index is None else max(last_index, e.index)

        if not e.is_client:
            continue
        proc = e.process
        if proc in crashed:
            gone = crashed[proc]
            where = f" on line {gone.line}" if gone.line is not None else ""
            report(e, f"process {proc!r} acts again after its info{where} (a crashed process must not issue)")
            continue
        if e.type == "invoke":
            if proc in open_ops:
                first = open_ops[proc]
                where = f" from line {first.line}" if first.line is not None else ""
                report(e, f"process {proc!r} invokes while its {first.f}{where} is still open")
            open_ops[proc] = e
            continue
        invoke = open_ops.pop(proc, None)
        if invoke is None:
            report(e, f"{e.type} for process {proc!r} without an invoke")
        else:
            if invoke.f != e.f:
                report(e, f"completion f {e.f!r} differs from its invoke's {invoke.f!r}")
            if invoke.key != e.key:
                report(e, f"completion key {e.key!r} differs from its invoke's {invoke.key!r}")
        if e.type == "info":
            crashed[proc] = e
    return problems


# ---------------------------------------------------------------------------
# Pairing


def pair_operations(events: Iterable[Event]) -> list[Operation]:
    """Client events -> Operations in invoke order.

    invoke+ok: status ok, output is the completion's value (a read's result).
    invoke+fail: status fail (it certainly did not happen).
    invoke+info, or an invoke never completed: status info, ret END_OF_TIME,
    because it may take effect at any time after its call.
    Assumes a valid history; stray completions are ignored.
    """
    # One slot per invoke, in invoke order, filled when its completion arrives;
    # building an Operation only once keeps pairing cheap on long histories.
    ops: list[Operation | None] = []
    open_invokes: dict[Any, tuple[Event, int]] = {}  # process -> (invoke, its slot in ops)
    invokes: list[Event] = []
    for e in events:
        if not e.is_client:
            continue
        if e.type == "invoke":
            open_invokes[e.process] = (e, len(ops))
            ops.append(None)
            invokes.append(e)
            continue
        opened = open_invokes.pop(e.process, None)
        if opened is None:
            continue
        invoke, slot = opened
        if e.type == "info":
            ops[slot] = _open_operation(invoke, complete=e)
        else:
            ops[slot] = Operation(
                index=invoke.index,
                process=invoke.process,
                f=invoke.f,
                value=invoke.value,
                output=_output(e),
                call=invoke.time,
                ret=e.time,
                status=e.type,  # type: ignore[arg-type]
                key=invoke.key,
                node=e.node if e.node is not None else invoke.node,
                complete_index=e.index,
            )
    # Invokes never completed: outcome unknown, as if they ended in info.
    return [op if op is not None else _open_operation(invokes[i]) for i, op in enumerate(ops)]


def _output(complete: Event) -> Any:
    if complete.type != "ok":
        return None
    return UNKNOWN if complete.extra.get(UNKNOWN_FIELD) is True else complete.value


def _open_operation(invoke: Event, complete: Event | None = None) -> Operation:
    node = invoke.node
    if complete is not None and complete.node is not None:
        node = complete.node
    return Operation(
        index=invoke.index,
        process=invoke.process,
        f=invoke.f,
        value=invoke.value,
        output=None,
        call=invoke.time,
        ret=END_OF_TIME,
        status="info",
        key=invoke.key,
        node=node,
        complete_index=complete.index if complete is not None else None,
    )


# ---------------------------------------------------------------------------
# The whole history


@dataclass(frozen=True)
class History:
    """A read history: all events in file order, with views for each consumer."""

    events: tuple[Event, ...]
    path: str | None = None

    def client_events(self) -> list[Event]:
        return [e for e in self.events if e.is_client]

    def client_operations(self) -> list[Operation]:
        return pair_operations(self.events)

    def nemesis_events(self) -> list[Event]:
        return [e for e in self.events if e.process == NEMESIS]

    def observations(self) -> list[Event]:
        return [e for e in self.events if e.process == OBSERVER]

    def problems(self) -> list[Problem]:
        return validate(self.events)

    def keys(self) -> set[Any]:
        return {e.key for e in self.events if e.is_client}


def read_history(path: str | os.PathLike[str], *, check: bool = True) -> History:
    """Read a whole history file. With `check`, raise InvalidHistory listing
    every problem: unreadable lines (malformed JSON, missing fields, unknown
    type) and contract breaks found by `validate`, each with its line."""
    p = os.fspath(path)
    events: list[Event] = []
    problems: list[Problem] = []
    for n, raw in _iter_lines(p):
        try:
            event = _parse_line(raw, n, p)
        except FormatError as e:
            if not check:
                raise
            problems.append(Problem(n, e.message))
            continue
        if event is not None:
            events.append(event)
    if check:
        problems.extend(validate(events))
        if problems:
            problems.sort(key=lambda pr: (pr.line is None, pr.line or 0))
            raise InvalidHistory(problems, p)
    return History(tuple(events), p)


def history_from_events(events: Iterable[Event], path: str | None = None, *, check: bool = True) -> History:
    """A History from events read by another importer (e.g. Jepsen EDN),
    validated the same way as a JSON Lines file."""
    evs = tuple(events)
    if check:
        problems = validate(evs)
        if problems:
            raise InvalidHistory(problems, path)
    return History(evs, path)
