"""dialpref's own JSONL: one `Dialogue` per line, exactly as `dialpref data convert` writes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from dialpref.data.formats._build import RecordError, convert_records, record_id, require, validate_for
from dialpref.data.formats._io import RawRecord, display_name, iter_json_records
from dialpref.data.rejects import Rejects
from dialpref.data.schema import Dialogue

NAME = "native"


def sniff(record: dict[str, Any]) -> bool:
    turns = record.get("turns")
    return isinstance(turns, list) and bool(turns) and isinstance(turns[0], dict) and "text" in turns[0]


def read(source: str | Path, rejects: Rejects) -> Iterator[Dialogue]:
    name = display_name(source)

    def build(record: RawRecord) -> Dialogue:
        value = record.value
        dialogue_id = record_id(value.get("id"), name, record)
        turns = require(value, "turns", list)
        for index, turn in enumerate(turns):
            if not isinstance(turn, dict):
                raise RecordError(f"turn {index} is not an object")
            if "role" not in turn:
                raise RecordError(f"missing field 'role' in turn {index}")
        return validate_for(rejects, dialogue_id, turns, value.get("metadata") or {})

    return convert_records(iter_json_records(source), name, rejects, build)
