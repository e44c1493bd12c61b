"""Jepsen's history.edn: import it into our events, and export ours so Knossos or Elle can re-check.

Jepsen writes a history either as one EDN vector of op maps or as one op map
per line; both are read. An op map has `:index :type :process :f :value :time`
(Jepsen's nemesis is `:process :nemesis`). Histories from `jepsen.independent`
carry their key inside the value as a `[k v]` tuple; on import that becomes our
`key` and `value`, and on export a keyed event is written as such a tuple.

Keywords become plain strings (`:read` -> "read"), sets become sorted lists and
map keys become strings, because our history is JSON. Fields we do not model
(`:error`, ...) are kept in `Event.extra`.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import fractions
import math
import os
import re
import uuid
from collections.abc import Iterable
from typing import Any

import edn_format
from edn_format import ImmutableDict, ImmutableList, Keyword, Symbol

from history.bounded import (
    MAX_EDN_BYTES,
    MAX_EDN_FAST_BYTES,
    InputError,
    check_depth,
    check_edn_depth,
    check_json_value,
    read_text,
)
from history.events import (
    NON_CLIENT_PROCESSES,
    Event,
    History,
    event_from_dict,
    history_from_events,
)
from history.formats import FormatError
from history.operation import UNKNOWN, Operation

_OP_FIELDS = ("index", "type", "process", "f", "value", "time")

# Newer Jepsen prints ops as records: #jepsen.history.Op{...}. The record is
# just its map for our purposes. edn_format only has a global tag registry.
_RECORD_TAGS = ("jepsen.history.Op",)
for _tag in _RECORD_TAGS:
    edn_format.add_tag(_tag, lambda m: m)


# ---------------------------------------------------------------------------
# Import


def read_jepsen_edn(
    path: str | os.PathLike[str], *, independent: bool | None = None, warnings: list[str] | None = None
) -> list[Event]:
    """Events from a Jepsen history.edn file. FormatError for anything unreadable.

    `independent`: whether client values are jepsen.independent `[k v]`
    tuples. None decides from the data (see `looks_independent`).
    """
    p = os.fspath(path)
    text = read_text(p, MAX_EDN_FAST_BYTES)  # a regular file or -, bounded in size, UTF-8
    return parse_jepsen_edn(text, p, independent=independent, warnings=warnings)


def parse_jepsen_edn(
    text: str, path: str | None = None, *, independent: bool | None = None, warnings: list[str] | None = None
) -> list[Event]:
    """Events from history.edn text; see `read_jepsen_edn`. A file whose
    `:time`s go backwards is read in file order, and `warnings` (if given)
    gets a sentence naming the first backwards step."""
    forms, lines = _read_forms(text, path)
    if len(forms) == 1 and isinstance(forms[0], (ImmutableList, list, tuple)):
        # One vector (or list) holding every op: no per-op line numbers.
        forms, lines = list(forms[0]), [None] * len(forms[0])
    ops: list[dict[str, Any]] = []
    for position, (form, line) in enumerate(zip(forms, lines, strict=True)):
        if not isinstance(form, (ImmutableDict, dict)):
            where = "" if line is not None else f" (op {position + 1})"
            raise FormatError(f"expected an op map{where}, found {_describe(form)}", path, line)
        fields = _op_fields(form, line, path)
        try:
            check_json_value(fields)
        except InputError as e:
            raise FormatError(f"refused: {e}", path, line) from None
        ops.append(fields)
    if independent is None:
        independent = looks_independent(ops)
    _file_order(ops, lines, path, warnings)
    events = []
    for op, line in zip(ops, lines, strict=True):
        if independent and not _is_non_client(op.get("process")) and "key" not in op:
            value = op.get("value")
            if not (isinstance(value, list) and len(value) == 2):
                raise FormatError(f"independent history, but value {value!r} is not a [key value] tuple", path, line)
            op["key"], op["value"] = value
        events.append(event_from_dict(op, line, path))
    return events


def _file_order(ops: list[dict[str, Any]], lines: list[int | None], path: str | None,
                warnings: list[str] | None) -> None:
    """Knossos orders a history by its position in the file; `:time` only
    informs. Where every op has a time and times never go backwards, they
    agree with file order and are kept (reports draw them). Otherwise (no
    time, or times out of order, as in concatenated or re-sorted histories)
    position stands in for time, and likewise for `:index`."""
    times = [op.get("time") for op in ops]
    usable = all(_is_number(t) and t >= 0 for t in times)
    backwards = None
    if usable:
        for n in range(1, len(times)):
            if times[n] < times[n - 1]:
                backwards = n
                break
    if not usable or backwards is not None:
        for position, op in enumerate(ops):
            if "time" in op:
                op.setdefault("jepsen_time", op["time"])
            op["time"] = position
        if backwards is not None and warnings is not None:
            where = f"line {lines[backwards]}" if lines[backwards] is not None else f"op {backwards + 1}"
            warnings.append(
                f"{path or '<history>'}: :time goes backwards at {where} ({times[backwards]} after "
                f"{times[backwards - 1]}); real-time order is taken from file order, as Knossos does"
            )
    indices = [op.get("index") for op in ops]
    if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in indices) or any(
        indices[n] <= indices[n - 1] for n in range(1, len(indices))
    ):
        for position, op in enumerate(ops):
            if "index" in op:
                op.setdefault("jepsen_index", op["index"])
            op["index"] = position


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# Knossos's models in which a read of nil means "the value is unknown"; kv is
# our keyed cas-register (Jepsen's independent checker runs one per key).
NIL_READ_UNKNOWN_MODELS = frozenset({"register", "cas-register", "multi-register", "kv"})


def knossos_reads(ops: list[Operation], model: str) -> list[Operation]:
    """Operations as Knossos's `model` reads them: in the register family an
    ok read of nil matches any state (Jepsen writes nil when it does not know
    what was read), so its output becomes UNKNOWN."""
    if model not in NIL_READ_UNKNOWN_MODELS:
        return ops
    return [
        dataclasses.replace(op, output=UNKNOWN) if op.f == "read" and op.status == "ok" and op.output is None else op
        for op in ops
    ]


def looks_independent(ops: Iterable[dict[str, Any]]) -> bool:
    """Whether client values look like jepsen.independent `[k v]` tuples.

    Every client value must be a 2-element list. A plain cas-register's
    `[from to]` also is one, so an all-cas history counts as independent only
    when some inner value is itself a list (`[k [from to]]`); any read's plain
    `nil` invoke value rules independence out, and so does a list where the key
    would be (a txn of two `[f k v]` micro-ops).
    """
    client = [op for op in ops if not _is_non_client(op.get("process"))]
    if not client:
        return False
    values = [op.get("value") for op in client]
    if not all(isinstance(v, list) and len(v) == 2 for v in values):
        return False
    if any(isinstance(v[0], list) for v in values):
        # A key is a scalar; a pair of lists is a txn of two micro-ops (multi-register).
        return False
    if any(op.get("f") != "cas" for op in client):
        return True
    return any(isinstance(v[1], list) for v in values)


def _is_non_client(process: Any) -> bool:
    return isinstance(process, str) and process in NON_CLIENT_PROCESSES


# edn_format refuses a tag it has no handler for, and names it in its message.
_UNKNOWN_TAG = re.compile(r"Don't know how to handle tag ImmutableDict\((.+)\)$")
_MAX_NEW_TAGS = 16


def _loads_all(text: str) -> list[Any]:
    """edn_format.loads_all, but a tagged value we have no reader for (Clojure
    prints a Java object as #object[...]) is kept as its EDN text instead of
    failing the whole history: it can only be an opaque payload."""
    for _ in range(_MAX_NEW_TAGS):
        try:
            return list(edn_format.loads_all(text))
        except NotImplementedError as e:
            m = _UNKNOWN_TAG.match(str(e))
            if not m:
                raise
            tag = m.group(1)
            edn_format.add_tag(tag, lambda value, tag=tag: f"#{tag} {edn_format.dumps(value)}")
    return list(edn_format.loads_all(text))


# Jepsen's usual op line: a map with keyword keys whose values are nil,
# booleans, integers, keywords, strings without escapes, or vectors of those
# (two levels: jepsen.independent's [k [from to]]). Such a file is read by
# these expressions, far faster than edn_format, giving what edn_format and
# _plain together would; any other line sends the whole file to edn_format.
_SCALAR = r'nil|true|false|-?\d{1,30}|:[A-Za-z*!_?<>=+.-][\w*!?<>=+./:-]*|"[^"\\\n]*"'
_VEC1 = rf"\[(?:[\s,]*(?:{_SCALAR}))*[\s,]*\]"
_VALUE = rf"(?:{_SCALAR}|\[(?:[\s,]*(?:{_SCALAR}|{_VEC1}))*[\s,]*\])"
_PAIR = re.compile(rf":([A-Za-z*!_?<>=+-][\w*!?<>=+./-]*)[\s,]+({_VALUE})")
_OP_LINE = re.compile(rf"\{{[\s,]*(?::[A-Za-z*!_?<>=+-][\w*!?<>=+./-]*[\s,]+{_VALUE}[\s,]*)*\}}[\s,]*")
_TOKEN = re.compile(rf"\[|\]|{_SCALAR}")


def _fast_value(text: str) -> Any:
    if text[0] != "[":
        return _fast_scalar(text)
    stack: list[list[Any]] = [[]]
    for m in _TOKEN.finditer(text):
        t = m.group()
        if t == "[":
            stack.append([])
        elif t == "]":
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(_fast_scalar(t))
    return stack[0][0]


def _fast_scalar(t: str) -> Any:
    if t == "nil":
        return None
    if t in ("true", "false"):
        return t == "true"
    if t[0] == ":":
        return t[1:]
    if t[0] == '"':
        return t[1:-1]
    return int(t)


def _fast_forms(text: str) -> tuple[list[Any], list[int | None]] | None:
    """The forms of a file of simple op maps, one per line (optionally inside
    one vector, as Knossos's data is), or None if any line is another shape."""
    body = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1)]
    body = [(n, line) for n, line in body if line and not line.startswith(";")]
    if not body:
        return None
    vector = body[0][1].startswith("[") and body[-1][1].endswith("]")
    if vector:
        body[0] = (body[0][0], body[0][1][1:].strip())
        body[-1] = (body[-1][0], body[-1][1][:-1].strip())
    forms, lines = [], []
    for n, line in body:
        if not line:
            continue
        if not _OP_LINE.fullmatch(line):
            return None
        # Plain values as _plain would make them (a keyword is its name):
        # edn_format's Keyword hashes slowly enough to dominate the read.
        forms.append({m.group(1): _fast_value(m.group(2)) for m in _PAIR.finditer(line)})
        lines.append(None if vector else n)
    return forms, lines


def _read_forms(text: str, path: str | None) -> tuple[list[Any], list[int | None]]:
    """Every top-level form, with its line when the file is one form per line."""
    fast = _fast_forms(text)
    if fast is not None:
        return fast
    if len(text) > MAX_EDN_BYTES:
        raise FormatError(
            f"larger than {MAX_EDN_BYTES // 1024} KiB and not one simple op map per line, "
            "which is all edn_format can parse in reasonable time", path)
    try:
        check_edn_depth(text, limit=102)  # before the parser: +1 for the vector of every op, +1 for a txn
    except InputError as e:
        raise FormatError(f"refused: {e}", path) from None
    try:
        forms = _loads_all(text)
    except Exception as e:  # noqa: BLE001 - edn_format raises many types; all mean "cannot parse"
        raise _locate_parse_error(text, path, e) from None
    try:
        # Before _plain, which recurses; the +1 is the vector holding every op.
        check_depth(forms, limit=102)
    except InputError as e:
        raise FormatError(f"refused: {e}", path) from None
    nonblank = [n for n, line in enumerate(text.splitlines(), start=1) if line.strip() and not line.lstrip().startswith(";")]
    if len(nonblank) == len(forms):
        return forms, list(nonblank)
    return forms, [None] * len(forms)


def _locate_parse_error(text: str, path: str | None, error: Exception) -> FormatError:
    """Find the first line that does not parse on its own, for a one-map-per-line
    file; a vector spread over lines gets the parser's message alone."""
    reason = _one_line(error)
    if not text.lstrip().startswith(("[", "(")):
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                _loads_all(line)
            except Exception as e:  # noqa: BLE001
                return FormatError(f"malformed EDN: {_one_line(e)}", path, n)
    return FormatError(f"malformed EDN: {reason}", path)


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:160] + ("..." if len(text) > 160 else "")


def _op_fields(form: Any, line: int | None, path: str | None) -> dict[str, Any]:
    """An EDN op map -> the field dict `event_from_dict` takes."""
    out: dict[str, Any] = {}
    for k, v in form.items():
        name = _key_name(k)
        if name in ("type", "f") and isinstance(v, (Keyword, Symbol, str)):
            out[name] = _keyword_text(v)
        elif name == "process" and isinstance(v, (Keyword, Symbol)):
            out[name] = _keyword_text(v)
        elif name == "node" and v is not None and not isinstance(v, str):
            out[name] = str(_plain(v))
        else:
            out[name] = _plain(v)
    return out


def _keyword_text(v: Any) -> str:
    # str(Keyword("foo/bar")) is ":foo/bar"; keep the namespace, drop the colon.
    return str(v)[1:] if isinstance(v, Keyword) else str(v)


def _key_name(k: Any) -> str:
    if isinstance(k, (Keyword, Symbol)):
        return _keyword_text(k)
    if isinstance(k, str):
        return k
    return edn_format.dumps(k)


def _plain(v: Any) -> Any:
    """An EDN value as a JSON value."""
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, (Keyword, Symbol)):
        return _keyword_text(v)
    if isinstance(v, str):
        return str(v)  # edn_format's Char is a str subclass
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return v  # a non-finite one is refused by check_json_value

    if isinstance(v, (ImmutableList, list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (frozenset, set)):
        items = [_plain(x) for x in v]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=repr)
    if isinstance(v, (ImmutableDict, dict)):
        return {_key_name(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (decimal.Decimal, fractions.Fraction)):
        try:
            return float(v)
        except OverflowError:
            return math.inf
    if isinstance(v, (datetime.date, uuid.UUID)):
        return str(v)
    # Tagged elements, metadata and anything newer: keep their EDN text.
    try:
        return edn_format.dumps(v)
    except Exception:  # noqa: BLE001
        return repr(v)


def _describe(form: Any) -> str:
    value = _plain(form)
    return f"{type(value).__name__} {_one_line(Exception(repr(value)))}"


# ---------------------------------------------------------------------------
# Export


# A name that reads back as one keyword (EDN's symbol rules, conservatively).
_KEYWORD_NAME = re.compile(r"[A-Za-z*!_?<>=+-][A-Za-z0-9*!_?<>=+.#:/-]*")


def _keyword_or_text(name: str) -> Keyword | str:
    """A keyword where Jepsen would have one; a string where the name cannot
    be one (spaces, a leading digit), so the output always parses."""
    return Keyword(name) if _KEYWORD_NAME.fullmatch(name) and not name.endswith("/") else name


def event_to_edn(e: Event) -> str:
    """One Jepsen op map for an event. A keyed client event's value becomes
    the jepsen.independent tuple `[key value]`."""
    client = not _is_non_client(e.process)
    value = e.value
    if e.f == "txn" and isinstance(value, list):
        # Knossos's multi-register matches micro-ops on the keywords :read and :write.
        value = [[Keyword(m[0]), *m[1:]] if isinstance(m, list) and m and m[0] in ("read", "write") else m
                 for m in value]
    op: dict[Any, Any] = {
        Keyword("index"): e.index,
        Keyword("type"): Keyword(e.type),
        Keyword("process"): e.process if client else Keyword(e.process),
        Keyword("f"): _keyword_or_text(e.f),
        Keyword("value"): [e.key, value] if client and e.key is not None else value,
        Keyword("time"): e.time,
    }
    if not client and e.key is not None:
        op[Keyword("key")] = e.key
    if e.node is not None:
        op[Keyword("node")] = e.node
    for k, v in e.extra.items():
        op.setdefault(_keyword_or_text(k), v)
    return edn_format.dumps(op)


def events_to_edn(events: Iterable[Event]) -> str:
    """A history.edn text: one op map per line, which Jepsen, Knossos and Elle all read."""
    return "".join(event_to_edn(e) + "\n" for e in events)


def write_jepsen_edn(path: str | os.PathLike[str], events: Iterable[Event]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for e in events:
            out.write(event_to_edn(e) + "\n")


def read_jepsen_history(
    path: str | os.PathLike[str], *, independent: bool | None = None, warnings: list[str] | None = None
) -> History:
    """A validated History from a Jepsen history.edn file (InvalidHistory if it breaks the contract)."""
    p = os.fspath(path)
    return history_from_events(read_jepsen_edn(p, independent=independent, warnings=warnings), p)
