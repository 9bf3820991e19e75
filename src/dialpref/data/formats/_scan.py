"""Cutting a JSON array or id-keyed object into its records without trusting the file.

A record is found by its bytes (brackets and strings counted at C speed by one
regular expression), so its size and nesting are known before anything parses
it: a record over `MAX_RECORD_BYTES` or nested over `MAX_DEPTH` becomes one
reject and is skipped without being held, and the file goes on. Memory stays
bounded by one record, whatever the file holds.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import IO, Iterator

# One record (a JSONL line, an array item, an object's value) over this many bytes is a broken record.
MAX_RECORD_BYTES = 8 * 1024 * 1024
# Nesting levels inside one record: dialogues need about 6; 64 leaves room for rich metadata.
MAX_DEPTH = 64

_CHUNK = 1 << 20
# A whole string (escapes included), a lone quote (a string that goes on past this chunk) or a bracket.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|"|[\[\]{},]', re.S)
_STRING_END = re.compile(rb'\\.|"', re.S)
_OPEN, _CLOSE = b"[{", b"]}"


_SPACE = re.compile(r"[ \t\r\n]*")
_DECODER = json.JSONDecoder()
_UNPARSED = object()


class TruncatedJSON(ValueError):
    """The file ended inside its top-level array or object."""


@dataclass
class RawItem:
    number: int  # 1-based position of the record in the array or object
    data: bytes | None  # the record's bytes, or None when it was skipped (see `error`)
    error: str | None = None
    # the parsed record ((key, value) in an object) where the scanner parsed it already, else _UNPARSED
    value: object = None

    @property
    def parsed(self) -> bool:
        return self.value is not _UNPARSED


@dataclass
class _Item:
    parts: list[bytes] | None
    size: int = 0
    depth: int = 0

    def add(self, piece: bytes, limit: int) -> None:
        self.size += len(piece)
        if self.parts is not None:
            self.parts.append(piece)
            if self.size > limit:
                self.parts = None


class ItemScanner:
    """Yields each top-level item of one JSON container read from `stream`.

    `trailing` holds the first bytes after the container's end, so a caller can
    tell a clean end from content that follows it.
    """

    def __init__(self, stream: IO[bytes], *, max_bytes: int | None = None, max_depth: int | None = None) -> None:
        self.stream = stream
        self.max_bytes = MAX_RECORD_BYTES if max_bytes is None else max_bytes
        self.max_depth = MAX_DEPTH if max_depth is None else max_depth
        self.depth = 0
        self.number = 0
        self.item = _Item([])
        self.in_long_string = False
        self.escape_pending = False
        self.trailing = b""
        self.container = b"["

    def _finish(self) -> RawItem | None:
        item, self.item = self.item, _Item([])
        data = b"".join(item.parts).strip() if item.parts is not None else None
        if item.parts is not None and not data:
            return None
        self.number += 1
        if item.depth > self.max_depth:
            return RawItem(self.number, None, value=_UNPARSED,
                           error=f"record nested {item.depth:,} levels deep (limit {self.max_depth})")
        if data is None:
            return RawItem(self.number, None, value=_UNPARSED,
                           error=f"record too large: {item.size:,} bytes (limit {self.max_bytes:,})")
        return RawItem(self.number, data, value=_UNPARSED)

    def _skip_long_string(self, buf: bytes) -> int:
        """The offset just past the end of a string too long to keep; -1 when it goes on past `buf`."""
        pos = 1 if self.escape_pending else 0
        self.escape_pending = False
        for match in _STRING_END.finditer(buf, pos):
            pos = match.end()
            if match.group() == b'"':
                self.in_long_string = False
                return pos
        self.escape_pending = buf[pos:].endswith(b"\\")
        return -1

    def _start_long_string(self, carry: bytes) -> None:
        self.item.add(carry, self.max_bytes)
        self.item.parts = None
        self.in_long_string = True
        self.escape_pending = (len(carry) - len(carry.rstrip(b"\\"))) % 2 == 1

    def __iter__(self) -> Iterator[RawItem]:
        carry = b""
        while True:
            block = self.stream.read(_CHUNK)
            buf, carry = carry + block, b""
            if not buf:
                break
            pos = 0
            if self.in_long_string:
                pos = self._skip_long_string(buf)
                self.item.size += len(buf) if pos < 0 else pos
                if pos < 0:
                    continue
            text = buf.decode("latin-1")  # one char per byte: offsets in `text` are offsets in `buf`
            start = pos  # where the current item's bytes not yet kept begin
            while True:
                if self.depth == 1 and pos == start and self.item.size == 0:
                    fast = self._fast_item(buf, text, pos, at_end=not block)
                    if fast is not None:
                        item, pos = fast
                        start = pos
                        yield item
                match = _TOKEN.search(buf, pos)
                if match is None:
                    break
                pos, token = match.end(), match.group()
                if token == b'"':  # a string that goes on past this chunk
                    carry = buf[match.start():] if block else b""
                    break
                if token[:1] == b'"':
                    continue
                if token in (b"[", b"{"):
                    self.depth += 1
                    if self.depth == 1:
                        self.container, start = token, pos
                    self.item.depth = max(self.item.depth, self.depth - 1)
                elif token in (b"]", b"}"):
                    self.depth -= 1
                    if self.depth == 0:
                        yield from self._close_item(buf[start:match.start()])
                        self.trailing = (buf[pos:] + self.stream.read(64)).strip()[:64]
                        return
                elif self.depth == 1:  # the comma between two records
                    yield from self._close_item(buf[start:match.start()])
                    start = pos
            if self.depth >= 1:
                self.item.add(buf[start:len(buf) - len(carry)], self.max_bytes)
                if len(carry) > self.max_bytes:
                    self._start_long_string(carry)  # longer than any record: skip it, never hold it
                    carry = b""
        if self.depth > 0 or self.in_long_string:
            raise TruncatedJSON(f"truncated JSON: the file ends inside record {self.number + 1}")

    def _fast_item(self, buf: bytes, text: str, pos: int, *, at_end: bool) -> tuple[RawItem, int] | None:
        """One whole record parsed by the C decoder, where it parses; None hands it to the token loop."""
        begin = _SPACE.match(text, pos).end()
        if begin >= len(text) or text[begin] in "]}":
            return None
        try:
            end = begin
            if self.container == b"{":
                key, end = _DECODER.raw_decode(text, begin)
                end = _SPACE.match(text, end).end()
                if not isinstance(key, str) or text[end:end + 1] != ":":
                    return None
                end = _SPACE.match(text, end + 1).end()
            value, end = _DECODER.raw_decode(text, end)
            if self.container == b"{":
                value = (key, value)
        except (ValueError, RecursionError):
            return None
        if end >= len(text) and not at_end:
            return None  # a number may go on in the next chunk
        data = buf[begin:end]
        if len(data) > self.max_bytes or (data.count(b"[") + data.count(b"{") > self.max_depth
                                          and value_depth(value) > self.max_depth):
            return None  # the token loop measures it and rejects it
        self.number += 1
        return RawItem(self.number, data, value=value if data.isascii() else _UNPARSED), end

    def _close_item(self, tail: bytes) -> Iterator[RawItem]:
        self.item.add(tail, self.max_bytes)
        finished = self._finish()
        if finished is not None:
            yield finished


def value_depth(value: object) -> int:
    """How deeply a parsed record nests (a scalar is 0, [] is 1)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            node = node.values()
        elif not isinstance(node, (list, tuple)):
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in node if isinstance(child, (dict, list)))
    return deepest


def record_depth(data: bytes) -> int:
    """How deeply a record nests, counting brackets outside strings (cheap when it has few brackets)."""
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return 0
    depth = deepest = 0
    for match in _TOKEN.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def item_value(item: RawItem, container: bytes) -> object:
    """The record an item holds: parsed by the scanner already, or parsed here (bounded in depth)."""
    if item.parsed:
        return item.value
    if container == b"{":
        pair = loads_record(b"{" + item.data + b"}")
        return next(iter(pair.items())) if isinstance(pair, dict) and len(pair) == 1 else pair
    return loads_record(item.data)


def loads_record(data: bytes | str) -> object:
    """`json.loads`, refusing a record nested over MAX_DEPTH before Python's recursion meets it."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    depth = record_depth(raw)
    if depth > MAX_DEPTH:
        raise ValueError(f"record nested {depth} levels deep (limit {MAX_DEPTH})")
    return json.loads(data)
