"""LMSYS-Chat / ProUtt raw input: `{"id", "conversation": [{"role", "content"}], ...}`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from dialpref.data.formats._build import chat_turns, convert_records, extra_metadata, require, validate_for
from dialpref.data.formats._io import RawRecord, display_name, iter_json_records
from dialpref.data.rejects import Rejects
from dialpref.data.schema import Dialogue

NAME = "lmsys"
ROLES = {"user": "user", "human": "user", "assistant": "assistant", "system": "system"}


def sniff(record: dict[str, Any]) -> bool:
    conversation = record.get("conversation")
    return (isinstance(conversation, list) and bool(conversation)
            and isinstance(conversation[0], dict) and "role" in conversation[0])


def read(source: str | Path, rejects: Rejects) -> Iterator[Dialogue]:
    name = display_name(source)

    def build(record: RawRecord) -> Dialogue:
        value = record.value
        messages = require(value, "conversation", list)
        turns = chat_turns(messages, role_key="role", text_key="content", aliases=ROLES, field="conversation")
        raw_id = value.get("id", value.get("conversation_id"))
        dialogue_id = str(raw_id if raw_id is not None else f"{Path(name).stem}:{record.position}")
        return validate_for(rejects, dialogue_id, turns,
                        {"format": NAME, **extra_metadata(value, skip=("id", "conversation"))})

    return convert_records(iter_json_records(source), name, rejects, build)
