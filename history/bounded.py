"""Reading input nobody vouches for, within bounds: files, JSON and YAML.

Every reader of a user's file goes through here, so that no file, however
made, can hang the harness, exhaust its memory, overflow a number or recurse
past Python's stack; each refusal is one `FormatError` line.

- Files: only a regular file (or `-`, standard input) is read. The type is
  checked on the opened descriptor (opened non-blocking, so a FIFO with no
  writer cannot block the open), so a FIFO, a device (/dev/zero) or a folder
  is refused before a byte is read. Whole-file reads stop at a size limit;
  line readers stop at a line-length limit, so a sparse 1 GB file of NULs
  costs one line's worth of memory.
- JSON: NaN and Infinity are refused (not JSON, and NaN != NaN would turn a
  write of NaN read back into a false "not linearizable"); integers of more
  than MAX_INT_DIGITS digits and floats that overflow to infinity (1e400) are
  refused; nesting deeper than MAX_DEPTH is refused.
- YAML: SafeLoader (no `!!python` tags), with a budget on the size of the
  document once aliases are expanded (a "billion laughs" file is a few
  hundred bytes that expand exponentially), on nesting and on integer size.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import sys
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import IO, Any

import yaml

from history.formats import FormatError

MAX_DEPTH = 100
MAX_INT_DIGITS = 300
MAX_LINE_BYTES = 16 * 1024 * 1024
MAX_FILE_BYTES = 256 * 1024 * 1024  # a whole-file read (Porcupine logs, results.json)
# edn_format (pure Python, ply) parses 100-160 KB/s on this project's busy
# 2-core machine, with ~25x the file in memory: 1 MiB of small forms took
# 10 s. Knossos's test histories are at most 75 KB; a larger history.edn is
# refused rather than left to parse for minutes.
MAX_EDN_BYTES = 512 * 1024
# Jepsen's usual one-op-map-per-line file is read by a fast path
# (history/formats/jepsen_edn.py), ~2 MB/s; its bound is memory: a 13.5 MiB
# history took 730 MB to check.
MAX_EDN_FAST_BYTES = 8 * 1024 * 1024
MAX_YAML_BYTES = 1024 * 1024
MAX_YAML_NODES = 20_000  # after alias expansion


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def open_input(path: str | os.PathLike[str]) -> IO[bytes]:
    """A binary file object for a regular file, or standard input for `-`.
    FormatError for anything else, before reading."""
    p = os.fspath(path)
    if p == "-":
        return os.fdopen(os.dup(sys.stdin.fileno()), "rb")
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise FormatError(f"cannot read: {e.strerror or e}", p) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise FormatError(f"{_kind(mode)}, not a regular file (use - for standard input)", p)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_regular(path: str | os.PathLike[str]) -> None:
    """FormatError unless `path` is `-` or a regular file (used before a reader that opens it itself)."""
    if os.fspath(path) != "-":
        open_input(path).close()


def read_bytes(path: str | os.PathLike[str], limit: int = MAX_FILE_BYTES) -> bytes:
    """The whole file, refused past `limit` bytes."""
    with open_input(path) as f:
        # A regular file says its size: refuse before reading (a sparse 1 GB
        # file costs nothing then); standard input is read up to the limit.
        known = os.fstat(f.fileno())
        too_big = stat.S_ISREG(known.st_mode) and known.st_size > limit
        data = b"" if too_big else f.read(limit + 1)
    if too_big or len(data) > limit:
        raise FormatError(f"larger than {_size(limit)}; refusing to read it whole", os.fspath(path))
    return data


def read_text(path: str | os.PathLike[str], limit: int = MAX_FILE_BYTES) -> str:
    """The whole file as UTF-8 text; FormatError with the line of the first bad byte."""
    data = read_bytes(path, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise FormatError(f"not UTF-8 text ({e.reason} at byte {e.start})", os.fspath(path), line) from None


def iter_lines(path: str | os.PathLike[str], max_line: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw line) for a regular file or `-`; no line may pass `max_line` bytes."""
    p = os.fspath(path)
    with open_input(p) as f:
        n = 0
        while True:
            raw = f.readline(max_line + 1)
            if not raw:
                return
            n += 1
            if len(raw) > max_line:
                raise FormatError(f"line longer than {_size(max_line)}", p, n)
            yield n, raw


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n >= 1024 * 1024 else f"{n // 1024} KiB"


# ---------------------------------------------------------------------------
# JSON


class InputError(ValueError):
    """A value outside the bounds (its message is one line, without a place)."""


def _no_constant(name: str) -> Any:
    raise InputError(f"{name} is not a number JSON allows")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise InputError(f"an integer of {len(text.lstrip('-'))} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InputError(f"{text[:40]} is too large for a number")
    return value


# Text that may hold a number past the bounds: a run of digits longer than
# MAX_INT_DIGITS, or an exponent of three digits. Only such text pays for the
# per-number hooks (they made reading a 200,000-event history 3x slower).
_SUSPECT_NUMBER = re.compile(rf"\d{{{MAX_INT_DIGITS + 1}}}|[eE][+-]?\d{{3}}")


def loads_json(text: str | bytes) -> Any:
    """json.loads within the bounds above. InputError for a value out of
    bounds, json.JSONDecodeError (a ValueError) for bad syntax."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    try:
        if _SUSPECT_NUMBER.search(text):
            value = json.loads(text, parse_constant=_no_constant, parse_int=_bounded_int, parse_float=_finite_float)
        else:
            value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise InputError(f"nested deeper than {MAX_DEPTH}") from None
    # Nesting cannot be deeper than the number of openers: walk only when it could be.
    if text.count("[") + text.count("{") > MAX_DEPTH:
        check_depth(value)
    return value


def _nested(v: Any) -> Any:
    """The children of a container (mappings give keys and values), else None."""
    if isinstance(v, Mapping):
        return [*v.keys(), *v.values()]
    if isinstance(v, (Sequence, AbstractSet)) and not isinstance(v, (str, bytes, bytearray)):
        return v
    return None


# EDN's openers (#{ and #( included via their bracket), and what may hide them.
_EDN_BRACKETS = re.compile(r'"(?:\\.|[^"\\])*"|;[^\n]*|\\.|[\[\](){}]')


def check_edn_depth(text: str, limit: int = MAX_DEPTH) -> None:
    """InputError for EDN text nested deeper than `limit`, found by a scan
    that stops there: edn_format would spend seconds on a file of brackets."""
    depth = 0
    for m in _EDN_BRACKETS.finditer(text):
        c = m.group()
        if c in "[({":
            depth += 1
            if depth > limit:
                raise InputError(f"nested deeper than {limit} (line {text.count(chr(10), 0, m.start()) + 1})")
        elif c in "])}":
            depth -= 1


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """InputError if containers (JSON's, or EDN's lists, sets and maps) nest
    deeper than `limit`; iterative, so the check itself cannot recurse."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        children = _nested(v)
        if children is None:
            continue
        if depth > limit:
            raise InputError(f"nested deeper than {limit}")
        stack.extend((c, depth + 1) for c in children)


def check_json_value(value: Any) -> None:
    """InputError for a value JSON could not have given: non-finite floats,
    huge integers, deep nesting (for values built by other readers, e.g. EDN)."""
    check_depth(value)
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            raise InputError(f"{v} is not a finite number")
        if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > MAX_INT_DIGITS * 3.32:
            raise InputError(f"an integer of more than {MAX_INT_DIGITS} digits")
        children = _nested(v)
        if children is not None:
            stack.extend(children)


# ---------------------------------------------------------------------------
# YAML


class BoundedSafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a document whose alias expansion, nesting
    or integers pass the budgets above (a yaml.YAMLError, like any other
    refusal of the loader, so callers print it as malformed YAML)."""

    def compose_document(self) -> Any:
        node = super().compose_document()
        _check_expansion(node)
        return node

    def construct_yaml_int(self, node: yaml.Node) -> int:
        digits = sum(c.isdigit() for c in str(node.value))
        if digits > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {digits} digits (at most {MAX_INT_DIGITS})", node.start_mark)
        return super().construct_yaml_int(node)


BoundedSafeLoader.add_constructor("tag:yaml.org,2002:int", BoundedSafeLoader.construct_yaml_int)


def _check_expansion(root: yaml.Node | None) -> None:
    """Count the nodes the document has once every alias is expanded (each
    shared node counted as often as it is reached, memoised so counting is
    linear in the composed graph) and its depth; refuse past the budgets."""
    if root is None:
        return
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    entered: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # iterative depth-first post-order over the composed graph
        node, leaving = stack.pop()
        key = id(node)
        kids = _children(node)
        if leaving:
            sizes[key] = 1 + sum(sizes[id(k)] for k in kids)
            depths[key] = 1 + max((depths[id(k)] for k in kids), default=0)
            if sizes[key] > MAX_YAML_NODES:
                _refuse(node, f"aliases expand to more than {MAX_YAML_NODES} nodes")
            if depths[key] > MAX_DEPTH:
                _refuse(node, f"nested deeper than {MAX_DEPTH}")
            continue
        if key in sizes:
            continue
        if key in entered:
            # Reached again while still inside it: an alias to an enclosing node.
            _refuse(node, "an alias refers to a node that contains it")
        entered.add(key)
        if len(entered) > MAX_YAML_NODES:
            _refuse(root, f"more than {MAX_YAML_NODES} nodes")
        stack.append((node, True))
        stack.extend((k, False) for k in kids)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _refuse(node: yaml.Node, problem: str) -> None:
    raise yaml.composer.ComposerError(None, None, problem, node.start_mark)


# Flow brackets, and what may hide them: quoted scalars and comments.
_FLOW = re.compile(r"""'(?:''|[^'])*'|"(?:\\.|[^"\\])*"|#[^\n]*|[\[\]{}]""")


def _check_flow_depth(text: str) -> None:
    """Refuse flow nesting past MAX_DEPTH before PyYAML's composer, which
    recurses per level and takes seconds to unwind a RecursionError."""
    depth = 0
    for m in _FLOW.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line = text.count("\n", 0, m.start())
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH}", yaml.Mark("", m.start(), line, 0, None, None))
        elif c in "]}":
            depth = max(0, depth - 1)


def compose_yaml(text: str) -> yaml.Node | None:
    _check_flow_depth(text)
    try:
        return yaml.compose(text, Loader=BoundedSafeLoader)
    except RecursionError:  # PyYAML's composer recurses per level
        raise yaml.YAMLError(f"nested deeper than {MAX_DEPTH}") from None


def load_yaml(text: str) -> Any:
    _check_flow_depth(text)
    try:
        return yaml.load(text, Loader=BoundedSafeLoader)  # noqa: S506 - BoundedSafeLoader is a SafeLoader
    except RecursionError:
        raise yaml.YAMLError(f"nested deeper than {MAX_DEPTH}") from None


def read_yaml_text(path: str | os.PathLike[str]) -> str:
    """A YAML file's text: a regular file, at most MAX_YAML_BYTES, UTF-8."""
    return read_text(path, MAX_YAML_BYTES)
