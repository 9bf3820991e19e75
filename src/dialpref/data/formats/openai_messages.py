"""OpenAI chat format: `{"messages": [{"role", "content"}], ...}` per JSONL line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from dialpref.data.formats._build import chat_turns, convert_records, extra_metadata, record_id, require, validate_for
from dialpref.data.formats._io import RawRecord, display_name, iter_json_records
from dialpref.data.rejects import Rejects
from dialpref.data.schema import Dialogue

NAME = "openai"
ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


def sniff(record: dict[str, Any]) -> bool:
    messages = record.get("messages")
    return (isinstance(messages, list) and bool(messages) and isinstance(messages[0], dict)
            and "content" in messages[0] and "role" in messages[0] and "dialog_act" not in messages[0])


def read(source: str | Path, rejects: Rejects) -> Iterator[Dialogue]:
    name = display_name(source)

    def build(record: RawRecord) -> Dialogue:
        value = record.value
        messages = require(value, "messages", list)
        turns = chat_turns(messages, role_key="role", text_key="content", aliases=ROLES, field="messages")
        dialogue_id = record_id(value.get("id"), name, record)
        metadata = {"format": NAME, **extra_metadata(value, skip=("id", "messages"))}
        return validate_for(rejects, dialogue_id, turns, metadata)

    return convert_records(iter_json_records(source), name, rejects, build)
