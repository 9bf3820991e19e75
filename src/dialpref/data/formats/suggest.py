"""Telling a table from JSON, and guessing the data map a user would write for its columns."""

from __future__ import annotations

import csv
import re

_GUESSES = {
    "text": r"^(utterance|text|message|content|sentence|turn_text|line)$",
    "speaker": r"^(speaker|author|character|name|from|sender|user)$",
    "order": r"^(utterance_?id|turn_?id|turn|index|position|order|utt_?idx|line_?id)$",
    "dialogue": r"^(dialogue_?id|dialog_?id|conversation_?id|conv_?id|session_?id|thread_?id|scene_?id)$",
}


def table_columns(head: str) -> list[str]:
    """The header of a CSV or TSV file, or [] when the text is not a table (JSON starts with { or [)."""
    first = head.lstrip("\ufeff \t\r\n")
    if not first or first[0] in "[{":
        return []
    line = first.splitlines()[0]
    delimiter = "\t" if line.count("\t") > line.count(",") else ","
    if line.count(delimiter) < 1:
        return []
    try:
        return [c.strip() for c in next(csv.reader([line], delimiter=delimiter))]
    except (csv.Error, StopIteration):
        return []


def suggested_map(columns: list[str]) -> str:
    """A data map YAML for these columns, guessed from their names; placeholders where no name fits."""
    found = {role: next((c for c in columns if re.match(pattern, c.strip().lower())), None)
             for role, pattern in _GUESSES.items()}
    used = {c for c in found.values() if c}
    dialogue = found["dialogue"] or "[COLUMN, ...]  # the column(s) that name a dialogue together"
    labels = [c for c in columns if c not in used and c.lower() in ("emotion", "sentiment", "intent", "act",
                                                                     "dialogue_act", "label")]
    lines = [f"dialogue: {dialogue}", f"order: {found['order'] or 'COLUMN  # rows sorted by it'}",
             f"speaker: {found['speaker'] or 'COLUMN'}", f"text: {found['text'] or 'COLUMN'}",
             "labels: {" + ", ".join(f"{c.lower()}: {c}" for c in labels) + "}",
             "roles: {default: user}"]
    return "\n".join("    " + l for l in lines)
