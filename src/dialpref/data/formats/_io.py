"""Opening sources and walking their records without loading them whole.

A source is a path, optionally `archive.zip::member`. `.gz` files are
decompressed on the fly; a `.zip` with one data file (or ConvLab's
`data/dialogues.json`) is read straight from the archive.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

import ijson

# One JSONL line over this many bytes is a broken record, not a dialogue: it is
# rejected and skipped without ever being held in memory whole.
MAX_LINE_BYTES = 8 * 1024 * 1024

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
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
    if member:
        if member not in names:
            raise FileNotFoundError(f"{path} has no member {member!r} (it has: {', '.join(names[:10])})")
        return member
    for preferred in _PREFERRED_MEMBERS:
        if preferred in names:
            return preferred
    data = [n for n in names if n.endswith(_DATA_SUFFIXES) and "ontology" not in n]
    if len(data) == 1:
        return data[0]
    raise ValueError(f"{path}: cannot tell which member to read among {data}; name one as {path}::MEMBER")


def open_binary(source: str | Path) -> IO[bytes]:
    path, member = split_source(source)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if zipfile.is_zipfile(path):
        archive = zipfile.ZipFile(path)
        name = zip_member(path, member)
        stream: IO[bytes] = archive.open(name)
        if name.endswith(".gz"):
            stream = gzip.GzipFile(fileobj=stream)
        return stream
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return path.open("rb")


def display_name(source: str | Path) -> str:
    path, member = split_source(source)
    if zipfile.is_zipfile(path) if path.exists() else False:
        return f"{path}::{zip_member(path, member)}"
    return str(path)


def head_text(source: str | Path, n_bytes: int = 65536) -> str:
    with open_binary(source) as stream:
        return stream.read(n_bytes).decode("utf-8", errors="replace")


@dataclass
class RawLine:
    number: int
    text: str | None  # None when the line could not be used; see `error`
    error: str | None = None
    raw: bytes = b""


def iter_lines(source: str | Path) -> Iterator[RawLine]:
    """Yield each line, decoded strictly; bad bytes or giant lines become errors, not crashes."""
    with open_binary(source) as stream:
        buffered = io.BufferedReader(stream) if not isinstance(stream, io.BufferedReader) else stream
        number = 0
        while True:
            chunk = buffered.readline(MAX_LINE_BYTES + 1)
            if not chunk:
                return
            number += 1
            if len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n"):
                skipped = len(chunk)
                while chunk and not chunk.endswith(b"\n"):
                    chunk = buffered.readline(MAX_LINE_BYTES)
                    skipped += len(chunk)
                yield RawLine(number, None, f"line too long: {skipped:,} bytes (limit {MAX_LINE_BYTES:,})",
                              b"")
                continue
            try:
                text = chunk.decode("utf-8")
            except UnicodeDecodeError as err:
                yield RawLine(number, None, f"non-UTF-8 bytes at byte {err.start} of the line", chunk)
                continue
            if text.strip():
                yield RawLine(number, text, None, chunk)


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
        first = stream.readline(MAX_LINE_BYTES)
        stripped = first.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
        if stripped.startswith("["):
            return "array"
        if not stripped.startswith("{"):
            return "lines"
        if _is_object(first):
            return "lines"
        # A broken first JSONL line, or the first line of one big object.
        second = stream.readline(MAX_LINE_BYTES) if first.endswith(b"\n") else b""
        return "lines" if _is_object(second) else "object"


def _is_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def iter_json_records(source: str | Path) -> Iterator[RawRecord]:
    layout = json_layout(source)
    if layout == "lines":
        for line in iter_lines(source):
            if line.text is None:
                yield RawRecord(line.number, error=line.error, raw=line.raw)
                continue
            try:
                value = json.loads(line.text)
            except json.JSONDecodeError as err:
                yield RawRecord(line.number, error=f"malformed JSON: {err.msg} at column {err.colno}",
                                raw=line.text)
                continue
            if not isinstance(value, dict):
                yield RawRecord(line.number, error=f"not a JSON object: {type(value).__name__}",
                                raw=line.text)
                continue
            yield RawRecord(line.number, value=value)
        return
    with open_binary(source) as stream:
        items = (ijson.items(stream, "item", use_float=True) if layout == "array"
                 else ijson.kvitems(stream, "", use_float=True))
        number = 0
        try:
            for item in items:
                number += 1
                if layout == "array":
                    yield RawRecord(number, value=item)
                else:
                    key, value = item
                    yield RawRecord(number, value=value, key=key)
        except (ijson.JSONError, UnicodeDecodeError) as err:
            yield RawRecord(number + 1, error=f"malformed or truncated JSON after record {number}: {err}")
