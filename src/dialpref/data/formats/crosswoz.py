"""CrossWOZ: `{id: {"goal", "messages": [{"role": "usr"|"sys", "content", "dialog_act", ...}]}}`.

Gold labels per turn: `dialogue_acts` as [intent, domain, slot, value] lists,
`dialogue_act` (the first act's intent), `state` (the system's belief state on
system turns) and `user_state` (the user's goal progress on user turns).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from dialpref.data.formats._build import RecordError, convert_records, extra_metadata, record_id, require, validate_for
from dialpref.data.formats._io import RawRecord, display_name, iter_json_records
from dialpref.data.rejects import Rejects
from dialpref.data.schema import Dialogue

NAME = "crosswoz"
ROLES = {"usr": "user", "sys": "assistant"}


def sniff(record: dict[str, Any]) -> bool:
    messages = record.get("messages")
    return (isinstance(messages, list) and bool(messages) and isinstance(messages[0], dict)
            and "dialog_act" in messages[0])


def read(source: str | Path, rejects: Rejects) -> Iterator[Dialogue]:
    name = display_name(source)

    def build(record: RawRecord) -> Dialogue:
        value = record.value
        messages = require(value, "messages", list)
        turns = []
        for index, message in enumerate(messages):
            if not isinstance(message, dict):
                raise RecordError(f"messages[{index}] is not an object")
            role = message.get("role")
            if role not in ROLES:
                raise RecordError(f"unknown role {role!r} at messages[{index}] (known: usr, sys)")
            labels: dict[str, Any] = {}
            acts = message.get("dialog_act") or []
            if acts:
                labels["dialogue_acts"] = acts
                labels["dialogue_act"] = acts[0][0]
            if "sys_state" in message:
                labels["state"] = message["sys_state"]
            if "user_state" in message:
                labels["user_state"] = message["user_state"]
            turns.append({"speaker": role, "role": ROLES[role], "text": message.get("content") or "",
                          "labels": labels})
        dialogue_id = record_id(record.key if record.key is not None else value.get("id"), name, record)
        return validate_for(rejects, dialogue_id, turns,
                        {"format": NAME, "language": "zh", **extra_metadata(value, skip=("messages",))})

    return convert_records(iter_json_records(source), name, rejects, build)
