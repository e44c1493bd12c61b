"""Readers for Porcupine's two test-data formats: the Jepsen etcd log and the kv EDN-per-line file.

The grammar of both is in ../shared/peer-histories/porcupine/README.md. Time
is the line number (0-based): both files are in real-time order and carry no
clocks. Anything outside the grammar raises `FormatError` with the line.

How the etcd log maps onto `Operation` (the "etcd" model gives these meanings):
- `:ok` lines complete an op with status "ok" (a read's output: the int or None).
- `:fail :cas [a b]` -> status "fail", value [a, b]: a completed cas that did
  not match. `:fail :read :timed-out` -> status "fail", output None: a
  completed read whose output is unknown.
- `:info ... :timed-out` -> status "info", ret END_OF_TIME: outcome unknown.
- An op still open at the end of the file is also "info" at END_OF_TIME.
"""

from __future__ import annotations

import os
import re
from typing import Any

from history.bounded import read_text
from history.formats import FormatError
from history.operation import END_OF_TIME, Operation

_ETCD_PREFIX = "INFO"
_ETCD_FS = {":read": "read", ":write": "write", ":cas": "cas"}
_TYPES = {":invoke": "invoke", ":ok": "ok", ":fail": "fail", ":info": "info"}
_INT = re.compile(r"-?\d{1,30}\Z")  # bounded: int() of 5,000 digits raises


def _read_lines(path: str | os.PathLike) -> list[str]:
    return read_text(path).splitlines()  # a regular file or -, bounded in size, UTF-8


def _etcd_value(words: list[str], where: tuple[str, int]) -> Any:
    """VALUE := nil | INT | [INT INT] | :timed-out (already split on whitespace)."""
    text = " ".join(words)
    if text == "nil":
        return None
    if text == ":timed-out":
        return ":timed-out"
    if len(words) == 1 and _INT.match(text):
        return int(text)
    if (
        len(words) == 2
        and words[0].startswith("[")
        and words[1].endswith("]")
        and _INT.match(words[0][1:])
        and _INT.match(words[1][:-1])
    ):
        return [int(words[0][1:]), int(words[1][:-1])]
    raise FormatError(f"bad value {text!r}", *where)


def parse_porcupine_etcd(lines: list[str], path: str = "<etcd log>") -> list[Operation]:
    """Operations from the lines of a Jepsen etcd log (see the module docstring)."""
    ops: list[Operation] = []
    open_ops: dict[int, tuple[int, str, Any]] = {}
    for n, line in enumerate(lines):
        where = (path, n + 1)
        words = line.split()
        if not words:
            continue
        if (
            len(words) < 7
            or words[0] != _ETCD_PREFIX
            or words[1] != "jepsen.util"
            or words[2] != "-"
        ):
            raise FormatError("expected 'INFO  jepsen.util - PROC TYPE F VALUE'", *where)
        proc_text, type_text, f_text = words[3], words[4], words[5]
        if not _INT.match(proc_text):
            raise FormatError(f"process {proc_text!r} is not an integer", *where)
        proc = int(proc_text)
        kind = _TYPES.get(type_text)
        f = _ETCD_FS.get(f_text)
        if kind is None:
            raise FormatError(f"unknown type {type_text!r}", *where)
        if f is None:
            raise FormatError(f"unknown function {f_text!r}", *where)
        value = _etcd_value(words[6:], where)
        if kind == "invoke":
            if proc in open_ops:
                raise FormatError(f"process {proc} invokes while its op is still open", *where)
            if f == "cas" and not isinstance(value, list):
                raise FormatError("a cas needs [FROM TO]", *where)
            if f == "write" and not isinstance(value, int):
                raise FormatError("a write needs an integer", *where)
            open_ops[proc] = (n, f, value)
            continue
        if proc not in open_ops:
            raise FormatError(f"process {proc} completes an op it never invoked", *where)
        start, f_open, arg = open_ops.pop(proc)
        if f != f_open:
            raise FormatError(f"completion {f_text} does not match invoke :{f_open}", *where)
        if kind == "info":
            # Ignored, as porcupine does: the op stays open until the end of time.
            ops.append(
                Operation(start, proc, f, arg, None, start, END_OF_TIME, "info", None, None, n)
            )
            continue
        output = None
        if f == "read":
            if kind == "ok":
                if value is not None and not isinstance(value, int):
                    raise FormatError("a read returns nil or an integer", *where)
                output = value
            elif value != ":timed-out":
                raise FormatError("a failed read must be :timed-out", *where)
        elif f == "cas" and value != arg:
            raise FormatError(f"cas completion {value!r} differs from its invoke {arg!r}", *where)
        ops.append(Operation(start, proc, f, arg, output, start, n, kind, None, None, n))
    for proc, (start, f, arg) in open_ops.items():
        ops.append(
            Operation(start, proc, f, arg, None, start, END_OF_TIME, "info", None, None, None)
        )
    ops.sort(key=lambda op: op.index)
    return ops


def read_porcupine_etcd(path: str | os.PathLike) -> list[Operation]:
    """Operations from a `jepsen/etcd_*.log` file; check them with the "etcd" model."""
    return parse_porcupine_etcd(_read_lines(path), str(path))


_KV_LINE = re.compile(
    r"\{:process (-?\d{1,18}), :type (:invoke|:ok), :f (:get|:put|:append), "
    r':key "([^"]*)", :value (nil|"[^"]*")\}\Z'
)


def parse_porcupine_kv(lines: list[str], path: str = "<kv history>") -> list[Operation]:
    """Operations from the lines of a kv EDN-per-line file (get/put/append on string keys)."""
    ops: list[Operation] = []
    open_ops: dict[int, tuple[int, str, str, Any]] = {}
    for n, line in enumerate(lines):
        where = (path, n + 1)
        if not line.strip():
            continue
        m = _KV_LINE.match(line.strip())
        if m is None:
            raise FormatError(
                'expected {:process N, :type :invoke|:ok, :f :get|:put|:append, :key "K", :value nil|"V"}',
                *where,
            )
        proc, kind, f, key, raw = int(m[1]), m[2][1:], m[3][1:], m[4], m[5]
        value = None if raw == "nil" else raw[1:-1]
        if kind == "invoke":
            if proc in open_ops:
                raise FormatError(f"process {proc} invokes while its op is still open", *where)
            if f != "get" and value is None:
                raise FormatError(f"{f} needs a string value", *where)
            open_ops[proc] = (n, f, key, None if f == "get" else value)
            continue
        if proc not in open_ops:
            raise FormatError(f"process {proc} completes an op it never invoked", *where)
        start, f_open, key_open, arg = open_ops.pop(proc)
        if f != f_open or key != key_open:
            raise FormatError(
                f"completion :{f} {key!r} does not match invoke :{f_open} {key_open!r}", *where
            )
        output = (value if value is not None else "") if f == "get" else None
        ops.append(Operation(start, proc, f, arg, output, start, n, "ok", key, None, n))
    for proc, (start, f, key, arg) in open_ops.items():
        ops.append(
            Operation(start, proc, f, arg, None, start, END_OF_TIME, "info", key, None, None)
        )
    ops.sort(key=lambda op: op.index)
    return ops


def read_porcupine_kv(path: str | os.PathLike) -> list[Operation]:
    """Operations from a `kv/*.txt` file; check them with the "string-kv" model."""
    return parse_porcupine_kv(_read_lines(path), str(path))


# ---------------------------------------------------------------------------
# Export


def events_to_porcupine_etcd(events: list, key: Any = None) -> list[str]:
    """Client events of one register (`key`) as Porcupine's Jepsen etcd log lines.

    The log has no keys, integer values only, and line order as time, so:
    ops that failed are left out (they certainly did not happen; the etcd
    grammar would read a failed cas as "compared and did not match"), an
    `info` completion becomes `:info ... :timed-out`, an ok read whose value
    is unknown becomes `:fail :read :timed-out` (a read with no known output),
    and processes that are not integers are numbered. ValueError names the
    first op the log cannot hold.
    """
    client = [e for e in events if e.is_client and e.key == key]
    outcome: dict[Any, str] = {}
    pending: dict[Any, Any] = {}
    for e in client:
        if e.type == "invoke":
            pending[e.process] = e.index
        elif e.process in pending:
            outcome[pending.pop(e.process)] = e.type
    numbers: dict[Any, int] = {}
    opened: dict[Any, Any] = {}
    lines = []
    for e in client:
        if e.f not in ("read", "write", "cas"):
            raise ValueError(f"event {e.index}: the etcd log holds read, write and cas, not {e.f!r}")
        proc = e.process if isinstance(e.process, int) else numbers.setdefault(e.process, -1 - len(numbers))
        if e.type == "invoke":
            opened[e.process] = e.index
            if outcome.get(e.index) == "fail":
                continue
            value = None if e.f == "read" else e.value
        else:
            if outcome.get(opened.get(e.process)) == "fail":
                continue
            if e.type == "info":
                lines.append(f"INFO  jepsen.util - {proc}\t:info\t:{e.f}\t:timed-out")
                continue
            value = e.value
            if e.f == "read" and e.extra.get("unknown") is True:
                lines.append(f"INFO  jepsen.util - {proc}\t:fail\t:read\t:timed-out")
                continue
        lines.append(f"INFO  jepsen.util - {proc}\t:{e.type}\t:{e.f}\t{_etcd_text(e, value)}")
    return lines


def _etcd_text(e: Any, value: Any) -> str:
    def whole(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    if value is None and e.f == "read":
        return "nil"
    if whole(value) and e.f != "cas":
        return str(value)
    if e.f == "cas" and isinstance(value, list) and len(value) == 2 and all(map(whole, value)):
        return f"[{value[0]} {value[1]}]"
    raise ValueError(f"event {e.index}: the etcd log holds integer values, not {value!r} for {e.f}")


def events_to_porcupine_kv(events: list) -> list[str]:
    """Client events as Porcupine's kv lines (get/put/append on string keys and values).

    The grammar has only :invoke and :ok: a failed op is left out, and an op
    whose outcome is unknown (info, or an unknown get) keeps only its invoke,
    which Porcupine reads as open until the end."""
    client = [e for e in events if e.is_client]
    failed: set[Any] = set()  # invoke indices whose op failed
    invoke_of: dict[Any, Any] = {}  # completion index -> its invoke index
    pending: dict[Any, Any] = {}
    for e in client:
        if e.type == "invoke":
            pending[e.process] = e.index
        elif e.process in pending:
            invoke_of[e.index] = pending.pop(e.process)
            if e.type == "fail":
                failed.add(invoke_of[e.index])
    numbers: dict[Any, int] = {}
    lines = []
    for e in client:
        if e.f not in ("get", "put", "append"):
            raise ValueError(f"event {e.index}: the kv format holds get, put and append, not {e.f!r}")
        if not isinstance(e.key, str) or '"' in e.key or "\n" in e.key:
            raise ValueError(f"event {e.index}: the kv format needs a string key without quotes, not {e.key!r}")
        proc = e.process if isinstance(e.process, int) else numbers.setdefault(e.process, -1 - len(numbers))
        if e.type == "invoke":
            if e.index in failed:
                continue
            value = None if e.f == "get" else e.value
        else:
            if e.type != "ok" or e.index not in invoke_of or (e.f == "get" and e.extra.get("unknown") is True):
                continue
            value = e.value if e.f == "get" else None
        if value is not None and (not isinstance(value, str) or '"' in value or "\n" in value):
            raise ValueError(f"event {e.index}: the kv format needs a string value without quotes, not {value!r}")
        shown = "nil" if value is None else f'"{value}"'
        lines.append(f'{{:process {proc}, :type :{e.type}, :f :{e.f}, :key "{e.key}", :value {shown}}}')
    return lines
