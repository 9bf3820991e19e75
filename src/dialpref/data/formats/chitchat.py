"""BYU Chit-Chat Challenge (PyPI `chitchat-dataset`): `{id: {"messages": [[{text, sender}], ...]}}`.

Each inner list is one speaker's burst of messages; it becomes one turn. The
first sender plays `user`, the other `assistant`, so next-user-turn tasks work
on human-human chat too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from dialpref.data.formats._build import RecordError, convert_records, extra_metadata, record_id, require, validate_for
from dialpref.data.formats._io import RawRecord, display_name, iter_json_records
from dialpref.data.rejects import Rejects
from dialpref.data.schema import Dialogue

NAME = "chitchat"


def sniff(record: dict[str, Any]) -> bool:
    messages = record.get("messages")
    return isinstance(messages, list) and bool(messages) and isinstance(messages[0], list)


def default_path() -> Path:
    """The dataset file the `chitchat-dataset` package installs (without importing it)."""
    from importlib.util import find_spec

    spec = find_spec("chitchat_dataset")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package chitchat-dataset is not installed: pip install chitchat-dataset==0.9.0")
    return Path(next(iter(spec.submodule_search_locations))) / "dataset.json"


def read(source: str | Path, rejects: Rejects) -> Iterator[Dialogue]:
    name = display_name(source)

    def build(record: RawRecord) -> Dialogue:
        value = record.value
        bursts = require(value, "messages", list)
        roles: dict[str, str] = {}
        turns = []
        for index, burst in enumerate(bursts):
            if not isinstance(burst, list) or not burst:
                raise RecordError(f"messages[{index}] should be a non-empty list of messages")
            sender = str(burst[0].get("sender", ""))
            if sender not in roles:
                if len(roles) == 2:
                    raise RecordError(f"unknown role: a third sender at messages[{index}] in a two-party chat")
                roles[sender] = "user" if not roles else "assistant"
            text = " ".join(str(m.get("text", "")).strip() for m in burst if isinstance(m, dict))
            speaker = "A" if roles[sender] == "user" else "B"
            turns.append({"speaker": speaker, "role": roles[sender], "text": text,
                          "metadata": {"timestamp": burst[0].get("timestamp")}})
        dialogue_id = record_id(record.key if record.key is not None else value.get("id"), name, record)
        return validate_for(rejects, dialogue_id, turns, {"format": NAME, **extra_metadata(value, skip=("messages",))})

    return convert_records(iter_json_records(source), name, rejects, build)
