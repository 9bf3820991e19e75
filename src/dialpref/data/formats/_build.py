"""Turning a reader's raw turns into a validated `Dialogue`, or a reject with its reason."""

from __future__ import annotations

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


def validate(dialogue_id: str, turns: list[dict[str, Any]], metadata: dict[str, Any]) -> Dialogue:
    if not turns:
        raise RecordError("empty dialogue: no turns")
    try:
        return Dialogue(id=dialogue_id, turns=turns, metadata=metadata)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
        message = first["msg"].removeprefix("Value error, ")
        raise RecordError(f"{message} (at {loc}){more}") from None


def convert_records(records: Iterable[RawRecord], source: str, rejects: Rejects, build) -> Iterator[Dialogue]:
    """Run `build(record) -> Dialogue` over raw records, sending every failure to `rejects`."""
    for record in records:
        if record.error is not None:
            rejects.add(source=source, line=record.position, reason=record.error, raw=record.raw,
                        record_id=record.key)
            continue
        try:
            yield build(record)
        except RecordError as err:
            rid = record.key or (record.value.get("id") if isinstance(record.value, dict) else None)
            rejects.add(source=source, line=record.position, reason=str(err), raw=record.value,
                        record_id=None if rid is None else str(rid))


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
