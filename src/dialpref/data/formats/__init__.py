"""One reader per source format, chosen by looking at the content, not the file name.

`read_dialogues(path)` streams `Dialogue`s from any supported file; records it
cannot use go to a `Rejects` with file, line and reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from dialpref.data.formats import (chitchat, convlab, crosswoz, lmsys, mapped, meld, native, openai_messages,
                                   sharegpt)
from dialpref.data.formats.suggest import table_columns, suggested_map
from dialpref.data.formats._io import DamagedSource, SourceError, head_text, iter_json_records
from dialpref.data.rejects import Rejects
from dialpref.data.schema import Dialogue

# Order matters only where shapes overlap: CrossWOZ before OpenAI (both have
# `messages` of role/content), native before ConvLab (both have `turns`).
JSON_READERS = [native, convlab, crosswoz, openai_messages, sharegpt, lmsys, chitchat]
READERS = {r.NAME: r for r in [*JSON_READERS, meld]}
FORMATS = tuple(READERS)

__all__ = ["FORMATS", "READERS", "SourceError", "UnknownFormatError", "detect_format", "read_dialogues"]


class UnknownFormatError(SourceError):
    """A file whose records match no reader; the message lists the known formats."""


def resolve_source(source: str | Path) -> str | Path:
    """'chitchat' names the dataset the chitchat-dataset package ships; anything else is a path."""
    return chitchat.default_path() if str(source) == "chitchat" else source


def detect_format(source: str | Path, rejects: Rejects | None = None) -> str:
    """The format of the first readable record; broken records before it are skipped here and
    rejected by the reader. A file with no readable record sends them all to `rejects` and fails."""
    source = resolve_source(source)
    head = head_text(source)
    if meld.sniff_header(head):
        return meld.NAME
    columns = table_columns(head)
    if columns:
        raise UnknownFormatError(
            f"{source} is a table with columns {', '.join(columns[:20])}, but not one dialpref knows (MELD); "
            f"describe it in a data map and pass --map FILE, e.g.:\n{suggested_map(columns)}")
    broken = []
    for record in iter_json_records(source):
        if not isinstance(record.value, dict):
            broken.append(record)
            continue
        for reader in JSON_READERS:
            if reader.sniff(record.value):
                return reader.NAME
        keys = ", ".join(list(record.value)[:8])
        raise UnknownFormatError(
            f"{source}: record {record.position} matches no known format (keys: {keys}); "
            f"known formats: {', '.join(FORMATS)}; name one with --format")
    if rejects is not None:
        for record in broken:
            rejects.add(source=str(source), line=record.position, reason=record.error or "unreadable",
                        raw=record.raw, record_id=record.key)
    where = f"; each one's reason is in {rejects.path}" if rejects is not None and rejects.path else ""
    raise UnknownFormatError(f"{source}: none of its {len(broken):,} records could be read as JSON or CSV, "
                             f"so its format cannot be told{where}")


def read_dialogues(source: str | Path, rejects: Rejects | None = None, *, format: str | None = None,
                   split: str | None = None, limit: int | None = None,
                   mapping: str | Path | None = None) -> Iterator[Dialogue]:
    """Stream dialogues from `source` (a path, `archive.zip::member`, or `chitchat` for the PyPI dataset).

    `mapping`: a data map YAML (see formats/mapped.py) for a file of the user's own shape."""
    source = resolve_source(source)
    rejects = rejects if rejects is not None else Rejects()
    rejects.split = split  # rejects are counted for the split read, not for every split of the file
    if mapping is not None:
        dialogues = mapped.read(source, rejects, mapped.load_map(mapping))
    else:
        name = format or detect_format(source, rejects)
        if name not in READERS:
            raise UnknownFormatError(f"unknown format {name!r}; known: {', '.join(FORMATS)}")
        dialogues = READERS[name].read(source, rejects)
    count = 0
    for dialogue in dialogues:
        if split is not None and dialogue.metadata.get("split") not in (split, None):
            continue
        yield dialogue
        count += 1
        if limit is not None and count >= limit:
            return
