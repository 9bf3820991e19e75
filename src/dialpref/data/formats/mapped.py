"""Any table of utterances, or JSONL of dialogues, read through a small data map (`--map spec.yaml`).

One row per utterance (CSV, TSV, JSONL, Parquet, as `datasets` writes them):

    dialogue: [Season, Episode, Scene]   # the column(s) whose values together name a dialogue
    order: Utterance_ID                  # rows of a dialogue sorted by it (numbers as numbers)
    speaker: Speaker
    text: Utterance
    labels: {emotion: Emotion}           # label name -> column
    parse: {Speaker: list_first}         # "['Ross Geller']" -> "Ross Geller" (also: list_join)
    roles: {default: user}               # speaker value -> role; `role: COLUMN` reads it from a column

One dialogue per JSONL line with nested turns: `turns: messages` names the list, and speaker / text /
role / labels name fields inside each turn; `dialogue` names the id field.
"""

from __future__ import annotations

import ast
import csv
import io
from pathlib import Path
from typing import Any, Iterator

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dialpref.data.formats._build import RecordError, note_dropped, validate
from dialpref.data.formats._io import SourceError, display_name, iter_json_records, open_binary
from dialpref.data.formats.meld import MAX_FIELD_CHARS
from dialpref.data.rejects import Rejects
from dialpref.data.schema import ROLES, Dialogue

NAME = "mapped"
PARSERS = ("list_first", "list_join", "strip")
_TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


class DataMap(BaseModel):
    """Where the dialogue, the order, the speaker, the text and the labels are in a user's file."""

    model_config = ConfigDict(extra="forbid")

    format: str | None = Field(None, description="csv, tsv, jsonl or parquet (default: from the file's suffix).")
    dialogue: list[str] = Field(description="Column(s) naming the dialogue; several are joined with '/'.")
    order: str | None = None
    speaker: str | None = None
    text: str
    role: str | None = Field(None, description="A column holding user / assistant / system.")
    roles: dict[str, str] = Field(default_factory=dict,
                                  description="Speaker value -> role; 'default' for the rest (default: user).")
    labels: dict[str, str] = Field(default_factory=dict, description="Label name -> column.")
    parse: dict[str, str] = Field(default_factory=dict, description="Column -> list_first / list_join / strip.")
    turns: str | None = Field(None, description="JSONL of dialogues: the field holding the list of turns.")

    @field_validator("dialogue", mode="before")
    @classmethod
    def _columns(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("parse")
    @classmethod
    def _parsers(cls, value: dict[str, str]) -> dict[str, str]:
        return _only(value, PARSERS, "parser(s)")

    @field_validator("roles")
    @classmethod
    def _roles(cls, value: dict[str, str]) -> dict[str, str]:
        return _only(value, ROLES, "role(s)")

    def columns(self) -> list[str]:
        named = [*self.dialogue, self.order, self.speaker, self.text, self.role, *self.labels.values()]
        return [c for c in named if c]


def _only(value: dict[str, str], allowed, what: str) -> dict[str, str]:
    bad = {k: v for k, v in value.items() if v not in allowed}
    if bad:
        raise ValueError(f"unknown {what} {bad}; known: {', '.join(allowed)}")
    return value


def load_map(path: str | Path) -> DataMap:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return DataMap.model_validate(raw)
    except OSError as err:
        raise SourceError(f"cannot read the data map {path}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise SourceError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the map"
        raise SourceError(f"{path}: {where}: {first['msg']}") from None


def parse_value(value: Any, how: str | None) -> Any:
    """A cell as the map says: a list literal's first item or its items joined, or stripped text."""
    if how is None or value is None:
        return value
    text = str(value).strip()
    if how in ("list_first", "list_join") and text.startswith("["):
        try:
            items = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
        if isinstance(items, (list, tuple)):
            items = [str(i).strip() for i in items if str(i).strip()]
            return (items[0] if items else "") if how == "list_first" else ", ".join(items)
    return text


def read(source: str | Path, rejects: Rejects, spec: DataMap) -> Iterator[Dialogue]:
    name = display_name(source)
    kind = spec.format or _TABLE_SUFFIXES.get(Path(name.split("::")[-1]).suffix.lower().removesuffix(".gz"))
    if kind is None:
        kind = _TABLE_SUFFIXES.get(Path(Path(name).stem).suffix.lower(), "csv")
    if spec.turns:
        yield from _nested(source, name, rejects, spec)
        return
    groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for line, row in _rows(source, name, kind, rejects, spec):
        try:
            key = "/".join(str(row[c]).strip() for c in spec.dialogue)
        except KeyError as err:
            rejects.add(source=name, line=line, reason=f"missing column {err.args[0]!r}", raw=row)
            continue
        groups.setdefault(key, []).append((line, row))
    for key, rows in groups.items():
        yield from _dialogue(key, rows, name, rejects, spec)


def _rows(source, name: str, kind: str, rejects: Rejects, spec: DataMap) -> Iterator[tuple[int, dict[str, Any]]]:
    if kind in ("csv", "tsv"):
        yield from _table_rows(source, name, "\t" if kind == "tsv" else ",", rejects, spec)
    elif kind == "parquet":
        yield from _parquet_rows(source, name, spec)
    elif kind == "jsonl":
        for record in iter_json_records(source):
            if record.error is not None:
                rejects.add(source=name, line=record.position, reason=record.error, raw=record.raw)
            else:
                yield record.position, record.value
    else:
        raise SourceError(f"data map format {kind!r} is not one of csv, tsv, jsonl, parquet")


def _table_rows(source, name: str, delimiter: str, rejects: Rejects, spec: DataMap):
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))
    stream = io.TextIOWrapper(open_binary(source), encoding="utf-8-sig", errors="replace", newline="")
    reader = csv.DictReader(stream, delimiter=delimiter)
    missing = [c for c in spec.columns() if c not in (reader.fieldnames or [])]
    if missing:
        raise SourceError(f"{name} has no column(s) {', '.join(missing)} that the data map names; its columns: "
                          f"{', '.join(reader.fieldnames or [])}")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            rejects.add(source=name, line=reader.line_num, reason=f"unreadable CSV row: {err}")
            continue
        if None in row:  # more fields than the header
            rejects.add(source=name, line=reader.line_num, reason="more fields than the header has", raw=row)
            continue
        yield reader.line_num, row


def _parquet_rows(source, name: str, spec: DataMap):
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise SourceError("reading Parquet needs pyarrow: pip install 'dialpref[parquet]'") from err
    table = pq.ParquetFile(str(source))
    missing = [c for c in spec.columns() if c not in table.schema_arrow.names]
    if missing:
        raise SourceError(f"{name} has no column(s) {', '.join(missing)}; its columns: "
                          f"{', '.join(table.schema_arrow.names)}")
    number = 0
    for batch in table.iter_batches(columns=spec.columns()):
        for row in batch.to_pylist():
            number += 1
            yield number, row


def _order_key(value: Any) -> tuple:
    text = str(value).strip()
    return (0, int(text), "") if text.isascii() and text.isdigit() else (1, 0, text)


def _dialogue(key: str, rows, name: str, rejects: Rejects, spec: DataMap) -> Iterator[Dialogue]:
    if spec.order:
        rows = sorted(rows, key=lambda item: _order_key(item[1].get(spec.order)))
    try:
        turns = [_turn(row, spec, line) for line, row in rows]
        dialogue = validate(key, turns, {"format": NAME, "source": name}, rejects.strict)
        note_dropped(rejects, name, rows[0][0], dialogue)
        yield dialogue
    except RecordError as err:
        rejects.add(source=name, line=rows[0][0], record_id=key, reason=str(err), raw=[r for _, r in rows][:50])


def _turn(row: dict[str, Any], spec: DataMap, line: int) -> dict[str, Any]:
    def cell(column: str | None) -> Any:
        return parse_value(row.get(column), spec.parse.get(column)) if column else None

    speaker = str(cell(spec.speaker) or "").strip() or "unknown"
    role = str(cell(spec.role)).strip().lower() if spec.role else spec.roles.get(speaker,
                                                                                  spec.roles.get("default", "user"))
    text = cell(spec.text)
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    labels = {k: cell(c) for k, c in spec.labels.items() if cell(c) not in (None, "")}
    return {"speaker": speaker, "role": role, "text": text, "labels": labels, "metadata": {"line": line}}


def _nested(source, name: str, rejects: Rejects, spec: DataMap) -> Iterator[Dialogue]:
    for record in iter_json_records(source):
        if record.error is not None:
            rejects.add(source=name, line=record.position, reason=record.error, raw=record.raw)
            continue
        value = record.value
        try:
            turns = value.get(spec.turns)
            if not isinstance(turns, list):
                raise RecordError(f"field {spec.turns!r} should be a list of turns")
            built = [_turn(t, spec, record.position) for t in turns if isinstance(t, dict)]
            if len(built) != len(turns):
                raise RecordError(f"every item of {spec.turns!r} should be an object")
            key = "/".join(str(value.get(c, "")) for c in spec.dialogue) or f"{Path(name).stem}:{record.position}"
            dialogue = validate(key, built, {"format": NAME, "source": name}, rejects.strict)
            note_dropped(rejects, name, record.position, dialogue)
            yield dialogue
        except RecordError as err:
            rejects.add(source=name, line=record.position, reason=str(err), raw=value)
