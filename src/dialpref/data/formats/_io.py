"""Opening sources and walking their records without loading them whole.

A source is a path, optionally `archive.zip::member`. `.gz` files are
decompressed on the fly; a `.zip` with one data file (or ConvLab's
`data/dialogues.json`) is read straight from the archive.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

from dialpref.data.formats._scan import MAX_RECORD_BYTES, ItemScanner, TruncatedJSON, item_value, loads_record

# One JSONL line over this many bytes is a broken record, not a dialogue: it is
# rejected and skipped without ever being held in memory whole.
MAX_LINE_BYTES = MAX_RECORD_BYTES
# A .gz file or zip member that decompresses to more than this is refused (a zip bomb, or not dialogue data).
MAX_DECOMPRESSED_BYTES = 16 * 1024 ** 3
_BOM = b"\xef\xbb\xbf"


class SourceError(ValueError):
    """A file that cannot be read at all: the message names it and says what to do."""


class DamagedSource(SourceError):
    """A compressed file that breaks part-way: what came before is kept, the rest cannot be read."""

_DATA_SUFFIXES = (".json", ".jsonl", ".csv", ".gz")
_PREFERRED_MEMBERS = ("data/dialogues.json", "dialogues.json")


def split_source(source: str | Path) -> tuple[Path, str | None]:
    text = str(source)
    if "::" in text:
        path, member = text.split("::", 1)
        return Path(path), member
    return Path(text), None


def zip_member(path: Path, member: str | None) -> str:
    """The archive member to read: the one named, ConvLab's dialogues.json, or the only data file."""
    with _zip(path) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
    if member:
        if member not in names:
            raise SourceError(f"{path} has no member {member!r} (it has: {', '.join(names[:10]) or 'nothing'})")
        return member
    for preferred in _PREFERRED_MEMBERS:
        if preferred in names:
            return preferred
    data = [n for n in names if n.endswith(_DATA_SUFFIXES) and "ontology" not in n]
    if len(data) == 1:
        return data[0]
    if not data:
        listed = ", ".join(names[:10]) or "no files at all"
        raise SourceError(f"{path} holds no dialogue file (.json, .jsonl, .csv or .gz); it has: {listed}")
    raise SourceError(f"{path} holds {len(data)} data files ({', '.join(data[:10])}); "
                      f"name the one to read as {path}::MEMBER")


def _zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise SourceError(f"{path} is a damaged or truncated zip archive ({err}); download or copy it again") \
            from None


def check_path(path: Path) -> None:
    """A readable, non-empty file, or a SourceError saying what is wrong with it."""
    try:
        info = path.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise SourceError(f"{path} is a symbolic link that loops back on itself") from None
        if err.errno == errno.EACCES:
            raise SourceError(f"{path} cannot be read: permission denied") from None
        if os.path.islink(path):
            raise SourceError(f"{path} is a symbolic link to a file that does not exist") from None
        raise SourceError(f"no such file: {path}") from None
    if path.is_dir():
        raise SourceError(f"{path} is a folder; pass one dialogue file inside it (.jsonl, .json, .csv, .gz, .zip)")
    if info.st_size == 0:
        raise SourceError(f"{path} is empty: there is nothing to read")
    if not os.access(path, os.R_OK):
        raise SourceError(f"{path} cannot be read: permission denied")


class GuardedStream(io.RawIOBase):
    """A decompressed stream whose failures are `DamagedSource` and whose output is capped.

    gzip is inflated here with zlib, feeding the 8-byte trailer last, so every byte
    before a damage or a truncation is delivered before the error is."""

    def __init__(self, inner: IO[bytes], name: str, *, gzipped: bool = False, limit: int | None = None) -> None:
        self.inner, self.name, self.gzipped = inner, name, gzipped
        self.limit = MAX_DECOMPRESSED_BYTES if limit is None else limit
        self.produced = 0
        self._inflater = zlib.decompressobj(wbits=31) if gzipped else None
        self._pending = b""  # compressed input not yet given to the inflater (the last 8 bytes held back)
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self._inflate(len(buffer)) if self.gzipped else self.inner.read(len(buffer))
        except DamagedSource:
            raise
        except (EOFError, zlib.error, gzip.BadGzipFile, zipfile.BadZipFile, OSError) as err:
            what = "ends early (truncated)" if isinstance(err, EOFError) else f"is damaged ({err})"
            raise DamagedSource(f"{self.name} {what} after {self.produced:,} bytes") from None
        self.produced += len(data)
        if self.produced > self.limit:
            raise DamagedSource(f"{self.name} decompresses to more than {self.limit:,} bytes "
                                f"(MAX_DECOMPRESSED_BYTES); refusing to read on")
        buffer[:len(data)] = data
        return len(data)

    def _inflate(self, size: int) -> bytes:
        while True:
            inflater = self._inflater
            if inflater.unconsumed_tail:
                out = inflater.decompress(inflater.unconsumed_tail, size)
            else:
                if not self._ended and len(self._pending) <= 8:
                    chunk = self.inner.read(1 << 16)
                    self._ended = not chunk
                    self._pending += chunk
                feed = self._pending if self._ended else self._pending[:-8]
                self._pending = self._pending[len(feed):]
                out = inflater.decompress(feed, size)
            if inflater.eof and inflater.unused_data:  # a multi-member gzip: the next member begins
                self._pending = inflater.unused_data + self._pending
                self._inflater = zlib.decompressobj(wbits=31)
            if out:
                return out
            if self._ended and not self._pending and not inflater.unconsumed_tail:
                if not self._inflater.eof and (self.produced or inflater is self._inflater):
                    raise EOFError
                return b""

    def close(self) -> None:
        self.inner.close()
        super().close()


def open_binary(source: str | Path) -> IO[bytes]:
    path, member = split_source(source)
    check_path(path)
    with path.open("rb") as probe:
        magic = probe.read(4)
    if zipfile.is_zipfile(path):
        archive = _zip(path)
        name = zip_member(path, member)
        stream: IO[bytes] = GuardedStream(archive.open(name), f"{path}::{name}")
        if name.endswith(".gz"):
            stream = GuardedStream(io.BufferedReader(stream), f"{path}::{name}", gzipped=True)
        return io.BufferedReader(stream)
    if magic.startswith(b"PK\x03\x04"):
        raise SourceError(f"{path} is a damaged or truncated zip archive (no central directory); "
                          "download or copy it again")
    if magic.startswith(b"\x1f\x8b"):
        return io.BufferedReader(GuardedStream(path.open("rb"), str(path), gzipped=True))
    return path.open("rb")


def display_name(source: str | Path) -> str:
    path, member = split_source(source)
    if zipfile.is_zipfile(path) if path.is_file() else False:
        return f"{path}::{zip_member(path, member)}"
    return str(path)


def head_text(source: str | Path, n_bytes: int = 65536) -> str:
    """The first `n_bytes` of the (decompressed) content; a damaged file gives what precedes the damage."""
    pieces: list[bytes] = []
    with open_binary(source) as stream:
        try:
            while sum(map(len, pieces)) < n_bytes:
                piece = stream.read1(4096)  # one raw read: bytes before a damage are not lost with it
                if not piece:
                    break
                pieces.append(piece)
        except DamagedSource as err:
            if not pieces:
                raise SourceError(f"{err}; nothing could be read from it") from None
    head = b"".join(pieces)
    if not head.strip(b" \t\r\n" + _BOM):
        raise SourceError(f"{display_name(source)} holds only white space: there is nothing to read")
    return head.decode("utf-8", errors="replace")


@dataclass
class RawLine:
    number: int
    text: str | None  # None when the line could not be used; see `error`
    error: str | None = None
    raw: bytes = b""


def iter_lines(source: str | Path) -> Iterator[RawLine]:
    """Yield each line, decoded strictly; bad bytes or giant lines become errors, not crashes.

    A damaged compressed file ends with one error line saying where it broke."""
    number = 0
    with open_binary(source) as stream:
        try:
            for number, chunk in _numbered_chunks(stream):
                yield _decoded(number, chunk, stream)
        except DamagedSource as err:
            yield RawLine(number + 1, None, f"{err}; the lines after line {number} cannot be read")


def _numbered_chunks(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    number = 0
    while True:
        chunk = stream.readline(MAX_LINE_BYTES + 1)
        if not chunk:
            return
        number += 1
        if number == 1 and chunk.startswith(_BOM):
            chunk = chunk[len(_BOM):]
        yield number, chunk


def _decoded(number: int, chunk: bytes, stream: IO[bytes]) -> RawLine:
    if len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n"):
        skipped = len(chunk)
        while chunk and not chunk.endswith(b"\n"):
            chunk = stream.readline(MAX_LINE_BYTES)
            skipped += len(chunk)
        return RawLine(number, None, f"line too long: {skipped:,} bytes (limit {MAX_LINE_BYTES:,})", b"")
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError as err:
        return RawLine(number, None, f"non-UTF-8 bytes at byte {err.start} of the line", chunk)
    return RawLine(number, text if text.strip() else None, None if text.strip() else "blank", chunk)


@dataclass
class RawRecord:
    """One JSON record of a source: where it was, and either its value or why it could not be read."""

    position: int  # line number for JSONL; record number (1-based) for arrays and id-keyed objects
    value: Any = None
    key: str | None = None
    error: str | None = None
    raw: Any = None


def json_layout(source: str | Path) -> str:
    """'array' ([{...}, ...]), 'object' ({id: {...}, ...}) or 'lines' (JSONL).

    Reads at most two lines (each bounded), so a one-line 1 GB JSON object
    is not loaded to find out what it is.
    """
    with open_binary(source) as stream:
        try:
            first = stream.readline(MAX_LINE_BYTES).removeprefix(_BOM)
            while first and not first.strip():
                first = stream.readline(MAX_LINE_BYTES)
            stripped = first.decode("utf-8", errors="replace").lstrip(" \t\r\n")
            if stripped.startswith("["):
                return "array"
            if not stripped.startswith("{") or _is_object(first):
                return "lines"
            # A broken first JSONL line, or the first line of one big object (whose next line is a key).
            second = stream.readline(MAX_LINE_BYTES) if first.endswith(b"\n") else b""
        except DamagedSource:
            return "lines"  # iter_lines reports where it broke
        return "lines" if second.lstrip().startswith(b"{") else "object"


def _is_object(line: bytes) -> bool:
    try:
        return isinstance(loads_record(line), dict)
    except ValueError:
        return False


def iter_json_records(source: str | Path) -> Iterator[RawRecord]:
    layout = json_layout(source)
    if layout == "lines":
        for line in iter_lines(source):
            if line.error == "blank":
                continue
            yield _line_record(line)
        return
    yield from _container_records(source, layout)


def _line_record(line: RawLine) -> RawRecord:
    if line.text is None:
        return RawRecord(line.number, error=line.error, raw=line.raw)
    try:
        value = loads_record(line.text)
    except json.JSONDecodeError as err:
        return RawRecord(line.number, error=f"malformed JSON: {err.msg} at column {err.colno}", raw=line.text)
    except ValueError as err:
        return RawRecord(line.number, error=str(err), raw=line.text[:2000])
    if not isinstance(value, dict):
        return RawRecord(line.number, error=f"not a JSON object: {type(value).__name__}", raw=line.text)
    return RawRecord(line.number, value=value)


def _container_records(source: str | Path, layout: str) -> Iterator[RawRecord]:
    """Records of a JSON array or id-keyed object, each bounded in size and depth (see _scan.py)."""
    with open_binary(source) as stream:
        if stream.peek(3)[:3] == _BOM:
            stream.read(3)
        scanner = ItemScanner(stream)
        number = 0
        try:
            for item in scanner:
                number = item.number
                yield _item_record(item, scanner.container, layout)
        except (TruncatedJSON, DamagedSource) as err:
            yield RawRecord(number + 1, error=f"{err}; nothing after record {number} can be read")
            return
        if scanner.trailing:
            yield RawRecord(number + 1, error="content after the end of the JSON "
                            f"{'array' if layout == 'array' else 'object'}: {scanner.trailing[:40]!r}")


def _item_record(item, container: bytes, layout: str) -> RawRecord:
    if item.error is not None:
        return RawRecord(item.number, error=item.error)
    try:
        value = item_value(item, container)
    except json.JSONDecodeError as err:
        return RawRecord(item.number, error=f"malformed JSON: {err.msg} at character {err.pos}",
                         raw=item.data[:2000].decode("utf-8", "backslashreplace"))
    except (ValueError, UnicodeDecodeError) as err:
        return RawRecord(item.number, error=f"unreadable record: {err}",
                         raw=item.data[:2000].decode("utf-8", "backslashreplace"))
    key = None
    if layout == "object":
        key, value = value if isinstance(value, tuple) else (None, value)
    if not isinstance(value, dict):
        return RawRecord(item.number, key=key, error=f"not a JSON object: {type(value).__name__}",
                         raw=item.data[:2000].decode("utf-8", "backslashreplace"))
    return RawRecord(item.number, value=value, key=key)
