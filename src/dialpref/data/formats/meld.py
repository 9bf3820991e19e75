"""MELD CSV: one utterance per row; rows grouped by `Dialogue_ID`, ordered by `Utterance_ID`.

Multi-party TV dialogue: the character is the speaker, every turn plays `user`.
Gold labels: `sentiment` (negative / neutral / positive) and `emotion` (7).
Rows of one dialogue are contiguous in the release, which lets the reader
stream; a dialogue id that comes back later is read as a second part and named
`<id>#2` rather than merged silently.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from dialpref.data.formats._build import RecordError, note_dropped, validate
from dialpref.data.formats._io import display_name, open_binary
from dialpref.data.rejects import Rejects
from dialpref.data.schema import Dialogue

NAME = "meld"
REQUIRED = ("Dialogue_ID", "Utterance_ID", "Speaker", "Utterance")
# A CSV field longer than this is a broken row (a turn is at most MAX_TURN_CHARS anyway).
MAX_FIELD_CHARS = 1_000_000
_DIGITS = re.compile(r"[0-9]+")


def sniff_header(head: str) -> bool:
    first = head.lstrip("\ufeff").split("\n", 1)[0]
    return "Dialogue_ID" in first and "Utterance_ID" in first and "Utterance" in first


def _has_bad_bytes(row: dict[str, Any]) -> bool:
    return any(isinstance(v, str) and any("\udc80" <= ch <= "\udcff" for ch in v) for v in row.values())


class _LineFeed:
    """The file's lines for `csv.reader`, one at a time, remembering which lines each row took.

    A row that swallowed whole rows (a quote left open) is read again from its second line."""

    def __init__(self, stream: io.TextIOBase) -> None:
        self.stream = stream
        self.number = 0
        self.taken: list[tuple[int, str]] = []
        self.pushed: list[tuple[int, str]] = []

    def __iter__(self) -> "_LineFeed":
        return self

    def __next__(self) -> str:
        if self.pushed:
            number, line = self.pushed.pop()
        else:
            line = self.stream.readline()
            if not line:
                raise StopIteration
            self.number += 1
            number = self.number
            if number == 1:
                line = line.lstrip("\ufeff")
        self.taken.append((number, line))
        return line

    def row_lines(self) -> list[tuple[int, str]]:
        taken, self.taken = self.taken, []
        return taken

    def push_back(self, lines: list[tuple[int, str]]) -> None:
        self.pushed.extend(reversed(lines))


def _swallowed_rows(lines: list[tuple[int, str]], width: int) -> bool:
    """Whether a row's continuation lines are themselves whole rows of the file (an unclosed quote)."""
    for _, line in lines[1:]:
        try:
            fields = next(csv.reader([line]))
        except (csv.Error, StopIteration):
            continue
        if len(fields) == width and fields[0].strip().isascii() and fields[0].strip().isdigit():
            return True
    return False


def _rows(source: str | Path, name: str, rejects: Rejects) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, row) for every CSV row that can be read; each one that cannot is a reject."""
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))
    stream = io.TextIOWrapper(open_binary(source), encoding="utf-8", errors="surrogateescape", newline="")
    feed = _LineFeed(stream)
    reader = csv.reader(feed)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as err:
        rejects.add(source=name, line=1, reason=f"unreadable CSV header: {err}")
        return
    feed.row_lines()
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            lines = feed.row_lines()
            rejects.add(source=name, line=lines[0][0] if lines else feed.number, reason=f"unreadable CSV row: {err}")
            continue
        lines = feed.row_lines()
        if len(lines) > 1 and _swallowed_rows(lines, len(header)):
            rejects.add(source=name, line=lines[0][0], raw=lines[0][1],
                        reason=f"a quote left open: the row ran on over lines {lines[0][0]}-{lines[-1][0]}; "
                               "the lines after it are read again")
            feed.push_back(lines[1:])
            continue
        if len(fields) != len(header):
            rejects.add(source=name, line=lines[0][0], raw=fields,
                        reason=f"{len(fields)} fields where the header has {len(header)}")
            continue
        yield lines[0][0], dict(zip(header, fields))


def read(source: str | Path, rejects: Rejects) -> Iterator[Dialogue]:
    name = display_name(source)
    split = Path(name).stem.split("_")[0]
    rows = _rows(source, name, rejects)
    header_checked = False
    occurrences: Counter[str] = Counter()
    group: list[tuple[int, dict[str, Any]]] = []

    def flush() -> Iterator[Dialogue]:
        if not group:
            return
        dialogue_id = group[0][1]["Dialogue_ID"]
        occurrences[dialogue_id] += 1
        part = occurrences[dialogue_id]
        key = dialogue_id if part == 1 else f"{dialogue_id}#{part}"
        ordered = sorted(group, key=lambda item: int(item[1]["Utterance_ID"]))
        turns = [{"speaker": row["Speaker"].strip() or "unknown", "role": "user",
                  "text": row["Utterance"],
                  "labels": {k.lower(): row[k] for k in ("Sentiment", "Emotion") if row.get(k)},
                  "metadata": {"utterance_id": int(row["Utterance_ID"]), "line": line,
                               **{k.lower(): row[k] for k in ("Season", "Episode") if row.get(k)}}}
                 for line, row in ordered]
        try:
            dialogue = validate(f"meld-{split}-{key}", turns, {"format": NAME, "split": split}, rejects.strict)
            note_dropped(rejects, name, ordered[0][0], dialogue)
            yield dialogue
        except RecordError as err:
            rejects.add(source=name, line=ordered[0][0], reason=str(err), record_id=f"meld-{split}-{key}",
                        raw=[row for _, row in ordered])

    for line, row in rows:
        if not header_checked:
            header_checked = True
            missing = [c for c in REQUIRED if c not in row]
            if missing:
                rejects.add(source=name, line=1, reason=f"missing field(s) {', '.join(missing)} in the CSV header")
                return
        reason = _row_problem(row, group)
        if reason:
            rejects.add(source=name, line=line, reason=reason, raw=_printable(row))
            continue
        if group and row["Dialogue_ID"] != group[0][1]["Dialogue_ID"]:
            yield from flush()
            group = []
        group.append((line, row))
    yield from flush()


def _row_problem(row: dict[str, Any], group: list[tuple[int, dict[str, Any]]]) -> str | None:
    if _has_bad_bytes(row):
        return "non-UTF-8 bytes in the row"
    bad = [c for c in REQUIRED if not (row.get(c) or "").strip()]
    if bad:
        return f"missing field(s) {', '.join(bad)}"
    if not _DIGITS.fullmatch(row["Utterance_ID"].strip()):
        return f"Utterance_ID {row['Utterance_ID']!r} is not a number"
    row["Utterance_ID"] = row["Utterance_ID"].strip()
    same = [r for _, r in group if group and r["Dialogue_ID"] == row["Dialogue_ID"]]
    if any(r["Utterance_ID"] == row["Utterance_ID"] for r in same):
        return f"Utterance_ID {row['Utterance_ID']} repeats in dialogue {row['Dialogue_ID']}"
    return None


def _printable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                if isinstance(v, str) else v) for k, v in row.items()}
