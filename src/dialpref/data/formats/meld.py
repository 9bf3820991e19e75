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
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from dialpref.data.formats._build import RecordError, validate
from dialpref.data.formats._io import display_name, open_binary
from dialpref.data.rejects import Rejects
from dialpref.data.schema import Dialogue

NAME = "meld"
REQUIRED = ("Dialogue_ID", "Utterance_ID", "Speaker", "Utterance")


def sniff_header(head: str) -> bool:
    first = head.lstrip("\ufeff").split("\n", 1)[0]
    return "Dialogue_ID" in first and "Utterance_ID" in first and "Utterance" in first


def _has_bad_bytes(row: dict[str, Any]) -> bool:
    return any(isinstance(v, str) and any("\udc80" <= ch <= "\udcff" for ch in v) for v in row.values())


def read(source: str | Path, rejects: Rejects) -> Iterator[Dialogue]:
    name = display_name(source)
    split = Path(name).stem.split("_")[0]
    stream = io.TextIOWrapper(open_binary(source), encoding="utf-8", errors="surrogateescape", newline="")
    reader = csv.DictReader(stream)
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        rejects.add(source=name, line=1, reason=f"missing field(s) {', '.join(missing)} in the CSV header")
        return
    occurrences: Counter[str] = Counter()
    group: list[tuple[int, dict[str, Any]]] = []

    def flush() -> Iterator[Dialogue]:
        if not group:
            return
        dialogue_id = group[0][1]["Dialogue_ID"]
        occurrences[dialogue_id] += 1
        part = occurrences[dialogue_id]
        key = dialogue_id if part == 1 else f"{dialogue_id}#{part}"
        rows = sorted(group, key=lambda item: int(item[1]["Utterance_ID"]))
        turns = [{"speaker": row["Speaker"].strip() or "unknown", "role": "user",
                  "text": row["Utterance"],
                  "labels": {k.lower(): row[k] for k in ("Sentiment", "Emotion") if row.get(k)},
                  "metadata": {"utterance_id": int(row["Utterance_ID"]), "line": line,
                               **{k.lower(): row[k] for k in ("Season", "Episode") if row.get(k)}}}
                 for line, row in rows]
        try:
            yield validate(f"meld-{split}-{key}", turns, {"format": NAME, "split": split})
        except RecordError as err:
            rejects.add(source=name, line=rows[0][0], reason=str(err), record_id=f"meld-{split}-{key}",
                        raw=[row for _, row in rows])

    for row in reader:
        line = reader.line_num
        if _has_bad_bytes(row):
            rejects.add(source=name, line=line, reason="non-UTF-8 bytes in the row",
                        raw={k: (v.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                                 if isinstance(v, str) else v) for k, v in row.items()})
            continue
        bad = [c for c in REQUIRED if not (row.get(c) or "").strip()]
        if bad or not str(row["Utterance_ID"]).strip().isdigit():
            reason = (f"missing field(s) {', '.join(bad)}" if bad
                      else f"Utterance_ID {row['Utterance_ID']!r} is not a number")
            rejects.add(source=name, line=line, reason=reason, raw=row)
            continue
        if group and row["Dialogue_ID"] != group[0][1]["Dialogue_ID"]:
            yield from flush()
            group = []
        group.append((line, row))
    yield from flush()
