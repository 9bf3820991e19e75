"""ShareGPT: `{"id", "conversations": [{"from": "human"|"gpt", "value"}]}`, JSONL or a JSON array, gzip too."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from dialpref.data.formats._build import chat_turns, convert_records, extra_metadata, record_id, require, validate_for
from dialpref.data.formats._io import RawRecord, display_name, iter_json_records
from dialpref.data.rejects import Rejects
from dialpref.data.schema import Dialogue

NAME = "sharegpt"
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "chatgpt": "assistant", "bard": "assistant",
         "bing": "assistant", "model": "assistant", "assistant": "assistant", "system": "system"}


def sniff(record: dict[str, Any]) -> bool:
    conversations = record.get("conversations")
    return (isinstance(conversations, list) and bool(conversations)
            and isinstance(conversations[0], dict) and "from" in conversations[0])


def read(source: str | Path, rejects: Rejects) -> Iterator[Dialogue]:
    name = display_name(source)

    def build(record: RawRecord) -> Dialogue:
        value = record.value
        messages = require(value, "conversations", list)
        turns = chat_turns(messages, role_key="from", text_key="value", aliases=ROLES, field="conversations")
        dialogue_id = record_id(value.get("id"), name, record)
        return validate_for(rejects, dialogue_id, turns,
                        {"format": NAME, **extra_metadata(value, skip=("id", "conversations"))})

    return convert_records(iter_json_records(source), name, rejects, build)
