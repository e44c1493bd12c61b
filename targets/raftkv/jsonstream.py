"""JSON encoded and decoded in bounded pieces, so that a large snapshot never holds the event loop for long.

A single ``json.dumps`` or ``json.loads`` of a 30 MB state runs in C for
100 ms or more holding the GIL, so neither the loop nor a worker thread can
make it short. Here the containers near the root (down to ``depth``: dicts,
and lists longer than ``LONG_LIST``, such as an append's entries) are walked
in Python, and everything below them (a key's value, bounded in raftkv by the
client body limit) goes through the C codec whole.
Callers run a bounded batch of pieces between yields to the loop
(``STEP_BYTES`` / ``STEP_PIECES``).

``encode_pieces(obj)`` concatenates to exactly
``json.dumps(obj, separators=(",", ":"))``, so what it writes reads back with
plain ``json.loads`` (the on-disk and wire formats do not change).
``Decoder`` is the reverse: ``step()`` parses a bounded amount, ``value``
holds the result once ``step()`` returned True.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

# One batch between two yields to the loop: at most this many bytes or pieces, whichever comes first.
# A piece is one key (and its value, bounded by the body limit); 512 small ones take about a millisecond.
STEP_BYTES = 256 * 1024
STEP_PIECES = 512
# Dicts this close to the root are walked piece by piece: a raftkv snapshot's own dict (0), its
# "state" (1), and "data"/"dedupe" (2), plus one level for a peer message that carries the snapshot.
DEFAULT_DEPTH = 4
# Longer lists are encoded element by element; shorter ones (a dedupe pair, the members) whole.
LONG_LIST = 8
# How much of the input Decoder holds as text at a time (it grows for a longer value).
WINDOW_BYTES = 1024 * 1024

_encode = json.JSONEncoder(separators=(",", ":")).encode
_raw_decode = json.JSONDecoder().raw_decode
_WS = re.compile(r"[ \t\n\r]*")


def _walked(v) -> bool:
    return (isinstance(v, dict) and all(isinstance(k, str) for k in v)) or (isinstance(v, list) and len(v) > LONG_LIST)


def encode_pieces(obj, depth: int = DEFAULT_DEPTH) -> Iterator[bytes]:
    """Pieces whose concatenation is ``json.dumps(obj, separators=(",", ":")).encode()``."""
    if depth <= 0 or not _walked(obj):
        # (Non-string keys are converted by json.dumps itself: such a dict is not worth walking.)
        yield _encode(obj).encode()
        return
    is_dict = isinstance(obj, dict)
    sep = b"{" if is_dict else b"["
    for item in obj.items() if is_dict else obj:
        head, v = (sep + _encode(item[0]).encode() + b":", item[1]) if is_dict else (sep, item)
        if depth > 1 and _walked(v):
            yield head
            yield from encode_pieces(v, depth - 1)
        else:
            yield head + _encode(v).encode()
        sep = b","
    yield (b"{}" if is_dict else b"[]") if sep != b"," else (b"}" if is_dict else b"]")


def batches(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Pieces joined into batches of at most STEP_PIECES pieces and STEP_BYTES (or one longer piece)."""
    batch, n = bytearray(), 0
    for piece in pieces:
        if n and (len(batch) + len(piece) > STEP_BYTES or n >= STEP_PIECES):
            yield bytes(batch)
            batch, n = bytearray(), 0
        batch += piece
        n += 1
    if batch:
        yield bytes(batch)


class Decoder:
    """Parses one UTF-8 JSON text in bounded steps: containers down to ``depth`` item by item, the rest whole.

    The bytes are turned into text a window (``WINDOW_BYTES``) at a time, not all
    at once: one 30 MB conversion alone holds the loop for some 20 ms (mostly
    page faults of the fresh string). A value cut by the window's end fails to
    parse, or (a number) parses without a character after it; either way the
    window grows and the piece is parsed again. (Malformed input thus ends in
    a window that reaches the end, where the error is raised as json.loads would.)

    Raises ValueError (json.JSONDecodeError or UnicodeDecodeError) on malformed
    input, like json.loads; RecursionError for a leaf nested too deep for the C decoder.
    """

    def __init__(self, data: bytes | bytearray, depth: int = DEFAULT_DEPTH, window: int = WINDOW_BYTES):
        self.data = data
        self.depth = depth
        self.value = None
        self.done = False
        self._b0 = 0  # byte offset of the window's start
        self._window_bytes = self._width = max(1, window)
        self.text = ""
        self.pos = 0  # within text
        # Open containers, innermost last: [dict or list, key whose value is being parsed or None, items so far].
        self._stack: list[list] = []
        self._window(0)

    def _window(self, pos: int) -> None:
        """Move the window to start at text position pos, `_width` bytes wide (cut at a character boundary)."""
        text = self.text
        self._b0 += pos if text.isascii() else len(text[:pos].encode())
        data, b1 = self.data, min(len(self.data), self._b0 + self._width)
        while b1 < len(data) and data[b1] & 0xC0 == 0x80:  # never cut inside a character
            b1 -= 1
        self.text, self.pos = str(data[self._b0:b1], "utf-8"), 0
        self._b1 = b1
        self._whole = b1 == len(data)

    def _skip_ws(self) -> int:
        self.pos = _WS.match(self.text, self.pos).end()
        return self.pos

    def _fail(self, what: str) -> None:
        raise json.JSONDecodeError(what, self.text, self.pos)

    def _put(self, value) -> None:
        """A complete value: into the open dict under its key, or the result if it is the root."""
        if not self._stack:
            if self._skip_ws() != len(self.text) or self.data[self._b1:].strip(b" \t\n\r"):
                self._fail("Extra data")
            self.value, self.done = value, True
            return
        top = self._stack[-1]
        if isinstance(top[0], list):
            top[0].append(value)
        else:
            top[0][top[1]] = value
            top[1] = None
        top[2] += 1

    def _leaf(self, at: int):
        text = self.text
        value, end = _raw_decode(text, at)
        if not self._whole:
            # A number cut by the window's end still parses ("12" of "123", "0" of "0.5"): only a
            # delimiter after it proves it whole. Anything else: grow the window and parse again.
            after = _WS.match(text, end).end()
            if after >= len(text) or text[after] not in ",}]:":
                self._fail("value not followed by a delimiter within the window")
        self.pos = end
        return value

    def _value(self) -> None:
        """The value at pos: open a container (if shallow enough) or decode it whole."""
        text, at = self.text, self._skip_ws()
        if at < len(text) and text[at] in "{[" and len(self._stack) < self.depth:
            self.pos = at + 1
            self._stack.append([{} if text[at] == "{" else [], None, 0])
            return
        self._put(self._leaf(at))

    def _in_container(self) -> None:
        """One item (a dict's key and value) or the end of the innermost open container."""
        text = self.text
        top = self._stack[-1]
        is_list = isinstance(top[0], list)
        at = self._skip_ws()
        if at < len(text) and text[at] == ("]" if is_list else "}"):
            self.pos = at + 1
            self._put(self._stack.pop()[0])
            return
        if top[2]:  # not the first item: a comma first
            if at >= len(text) or text[at] != ",":
                self._fail("Expecting ',' delimiter")
            self.pos = at + 1
            at = self._skip_ws()
        if is_list:
            self._value()
            return
        if at >= len(text) or text[at] != '"':
            self._fail("Expecting property name enclosed in double quotes")
        key = self._leaf(at)
        if self._skip_ws() >= len(text) or text[self.pos] != ":":
            self._fail("Expecting ':' delimiter")
        self.pos += 1
        top[1] = key
        self._value()

    def _piece(self) -> None:
        """Parse one piece; if it does not fit in the window, widen the window and parse it again."""
        while True:
            pos, stack_depth = self.pos, len(self._stack)
            try:
                self._value() if not self._stack else self._in_container()
                return
            except ValueError:
                if self._whole:
                    raise
            # Undo the partial piece: a container it opened, a key it set (the rest is in pos).
            del self._stack[stack_depth:]
            if self._stack:
                self._stack[-1][1] = None
            self._width *= 2
            self._window(pos)

    def step(self, max_bytes: int = STEP_BYTES, max_pieces: int = STEP_PIECES) -> bool:
        """Parse about max_bytes of text (or max_pieces pieces) at most; True once the whole value is read."""
        start, pieces = self._b0 + self.pos, 0
        while not self.done and self._b0 + self.pos - start < max_bytes and pieces < max_pieces:
            if not self._whole and len(self.text) - self.pos < self._window_bytes // 2:
                self._width = self._window_bytes
                self._window(self.pos)
            self._piece()
            pieces += 1
        return self.done


def decode(data: bytes | bytearray, depth: int = DEFAULT_DEPTH, window: int = WINDOW_BYTES):
    """All steps at once (tests, and callers off the loop)."""
    d = Decoder(data, depth, window)
    while not d.step():
        pass
    return d.value
