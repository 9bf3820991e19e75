"""Turning a reader's raw turns into a validated `Dialogue`, or a reject with its reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

from pydantic import ValidationError

from dialpref.data.rejects import Rejects
from dialpref.data.schema import Dialogue
from dialpref.data.formats._io import RawRecord


class RecordError(ValueError):
    """A record that cannot become a dialogue; the message is the reject reason."""


def require(record: dict[str, Any], field: str, kind: type | tuple[type, ...]) -> Any:
    if field not in record:
        raise RecordError(f"missing field {field!r} (record has: {', '.join(list(record)[:8]) or 'nothing'})")
    value = record[field]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise RecordError(f"field {field!r} should be {names}, got {type(value).__name__}")
    return value


def map_role(raw: Any, aliases: dict[str, str], where: str) -> str:
    key = str(raw).strip().lower()
    if key not in aliases:
        raise RecordError(f"unknown role {raw!r} at {where} (known: {', '.join(sorted(aliases))})")
    return aliases[key]


def text_of(content: Any, where: str) -> str:
    """Message content as text: a string, or OpenAI's list of {'type': 'text', 'text': ...} parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if parts:
            return "\n".join(parts)
    if content is None:
        raise RecordError(f"missing text at {where}")
    raise RecordError(f"text at {where} should be a string, got {type(content).__name__}")


def record_id(value: Any, source: str, record: RawRecord) -> str:
    """The record's own id (0 and "x" alike); only a record without one is named by its position."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return f"{Path(source).stem}:{record.position}"
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise RecordError(f"id should be a string or a number, got {type(value).__name__}")
    return str(value)


def drop_empty_turns(turns: list[dict[str, Any]], metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """Turns without text are left out, not the dialogue: the dialogue's metadata lists them
    (`dropped_turns`: their index in the source and why), and each kept turn's source index is in its
    metadata (`source_index`), since a turn's index is its place among the kept turns."""
    empty = [i for i, t in enumerate(turns) if isinstance(t, dict) and isinstance(t.get("text"), str)
             and not t["text"].strip()]
    if not empty or len(empty) == len(turns):
        return turns
    metadata["dropped_turns"] = [{"index": i, "reason": "empty turn text"} for i in empty]
    return [{**t, "metadata": {**(t.get("metadata") or {}), "source_index": i}}
            for i, t in enumerate(turns) if i not in set(empty)]


def note_dropped(rejects: Rejects, source: str, line: int | None, dialogue: Dialogue) -> None:
    """One reject row per dropped turn, so runs count them (the dialogue itself was kept)."""
    for dropped in dialogue.metadata.get("dropped_turns", []):
        rejects.add(source=source, line=line, record_id=f"{dialogue.id}#{dropped['index']}",
                    reason=f"empty turn dropped (turn {dropped['index']}; the dialogue is kept)")


def validate(dialogue_id: str, turns: list[dict[str, Any]], metadata: dict[str, Any],
             strict: bool = False) -> Dialogue:
    """A checked Dialogue or a RecordError; empty turns are dropped unless `strict` (then they reject it)."""
    if not turns:
        raise RecordError("empty dialogue: no turns")
    if not strict:
        turns = drop_empty_turns(turns, metadata)
    try:
        dialogue = Dialogue(id=dialogue_id, turns=turns, metadata=metadata)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
        message = first["msg"].removeprefix("Value error, ")
        raise RecordError(f"{message} (at {loc}){more}") from None
    try:
        dialogue.to_json()  # what every writer does with it: a lone surrogate cannot be written as UTF-8
    except ValueError as err:
        raise RecordError(f"text that cannot be written as UTF-8 (a lone surrogate such as \\ud800): "
                          f"{str(err)[:120]}") from None
    return dialogue


def validate_for(rejects: Rejects, dialogue_id: str, turns: list[dict[str, Any]],
                 metadata: dict[str, Any]) -> Dialogue:
    """`validate` in the mode the rejects sink asks for (strict: an empty turn rejects the dialogue)."""
    return validate(dialogue_id, turns, metadata, strict=rejects.strict)


def convert_records(records: Iterable[RawRecord], source: str, rejects: Rejects, build) -> Iterator[Dialogue]:
    """Run `build(record) -> Dialogue` over raw records, sending every failure to `rejects`.

    A record of a shape the reader did not foresee (a list where an object was
    expected...) is one reject with the error's kind, never the end of the file."""
    first_seen: dict[str, int] = {}
    for record in records:
        if _other_split(record, rejects.split):
            continue  # a record of another split: neither read nor counted as a reject
        if record.error is not None:
            rejects.add(source=source, line=record.position, reason=record.error, raw=record.raw,
                        record_id=record.key)
            continue
        try:
            dialogue = build(record)
            note_dropped(rejects, source, record.position, dialogue)
            if dialogue.id in first_seen:
                raise RecordError(f"duplicate dialogue id {dialogue.id!r}: record {first_seen[dialogue.id]} "
                                  "has it already (ids must be unique; the first is kept)")
            first_seen[dialogue.id] = record.position
            yield dialogue
        except RecordError as err:
            _reject(rejects, source, record, str(err))
        except (TypeError, AttributeError, KeyError, IndexError, ValueError, RecursionError) as err:
            _reject(rejects, source, record, f"unexpected record shape ({type(err).__name__}: {str(err)[:160]})")


def _other_split(record: RawRecord, split: str | None) -> bool:
    if split is None or not isinstance(record.value, dict):
        return False
    own = record.value.get("data_split", record.value.get("split"))
    return isinstance(own, str) and own != split


def _reject(rejects: Rejects, source: str, record: RawRecord, reason: str) -> None:
    rid = record.key if record.key is not None else (
        record.value.get("id", record.value.get("dialogue_id")) if isinstance(record.value, dict) else None)
    rejects.add(source=source, line=record.position, reason=reason, raw=record.value,
                record_id=None if rid is None else str(rid)[:200])


def chat_turns(messages: list[Any], *, role_key: str, text_key: str, aliases: dict[str, str],
               field: str) -> list[dict[str, Any]]:
    """Turns from a list of {role, text} messages, as OpenAI, ShareGPT and LMSYS logs hold them."""
    turns = []
    for index, message in enumerate(messages):
        where = f"{field}[{index}]"
        if not isinstance(message, dict):
            raise RecordError(f"{where} is not an object")
        if role_key not in message:
            raise RecordError(f"missing field {role_key!r} in {where}")
        role = map_role(message[role_key], aliases, where)
        turns.append({"speaker": role, "role": role,
                      "text": text_of(message.get(text_key), f"{where}.{text_key}")})
    return turns


def extra_metadata(record: dict[str, Any], *, skip: tuple[str, ...]) -> dict[str, Any]:
    """Small scalar fields of a record (model, language, split...) kept as dialogue metadata."""
    return {k: v for k, v in record.items()
            if k not in skip and isinstance(v, (str, int, float, bool)) and len(str(v)) < 200}
