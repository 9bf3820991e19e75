"""Where bad records go: a JSONL file, one line per rejected record, with its reason.

Nothing a reader cannot use is dropped silently. Each reject names the file,
the line (or record number) and the reason, keeps the raw record, is logged
once, and counted, so a run can end with a count the user can act on.
"""

from __future__ import annotations

import json
import re
import logging
from collections import Counter
from pathlib import Path
from typing import Any

log = logging.getLogger("dialpref.rejects")

# A rejected record is kept whole unless it is huge; then its head is kept.
_MAX_RAW_CHARS = 100_000


class Rejects:
    """Collects rejected records; writes them to `path` when one is given.

    `strict`: a turn without text rejects its whole dialogue (by default the turn is dropped and
    reported, and the dialogue kept)."""

    def __init__(self, path: str | Path | None = None, *, echo: bool = True, strict: bool = False) -> None:
        self.path = Path(path) if path else None
        self.echo = echo
        self.strict = strict
        self.split: str | None = None  # set by read_dialogues: records of other splits are not counted
        self.count = 0
        self.reasons: Counter[str] = Counter()
        self.examples: list[dict[str, Any]] = []
        self._fh = None

    def add(self, *, source: str, line: int | None, reason: str, raw: Any = None,
            record_id: str | None = None) -> None:
        self.count += 1
        self.reasons[_reason_kind(reason)] += 1
        row = {"source": source, "line": line, "id": record_id, "reason": reason,
               "raw": _clip(raw)}
        if len(self.examples) < 20:
            self.examples.append(row)
        where = f"{source}:{line}" if line is not None else source
        if record_id:
            where += f" [{record_id}]"
        if self.echo:
            log.warning("rejected %s: %s", where, reason)
        if self.path is not None:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = self.path.open("a", encoding="utf-8")
            try:
                line = json.dumps(row, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate in the raw record: written escaped
                line = json.dumps(row).encode("ascii")
            self._fh.write(line.decode("utf-8") + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "Rejects":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def summary(self) -> str:
        if not self.count:
            return "no rejects"
        kinds = ", ".join(f"{k}: {n}" for k, n in self.reasons.most_common())
        where = f" (written to {self.path})" if self.path else ""
        return f"{self.count} rejected{where} - {kinds}"


def _reason_kind(reason: str) -> str:
    """The kind of problem, without positions: 'empty turn text (at turns.2.text)' -> 'empty turn text'."""
    return re.split(r":| \(| at | in |\d", reason, maxsplit=1)[0].strip()[:80] or reason[:80]


def _clip(raw: Any) -> Any:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="backslashreplace")
    if isinstance(raw, str) and len(raw) > _MAX_RAW_CHARS:
        return raw[:_MAX_RAW_CHARS] + f"... [{len(raw) - _MAX_RAW_CHARS:,} more characters]"
    if not isinstance(raw, (str, int, float, bool, list, dict, type(None))):
        return repr(raw)[:_MAX_RAW_CHARS]
    if isinstance(raw, (list, dict)):
        text = json.dumps(raw, ensure_ascii=False, default=str)
        if len(text) > _MAX_RAW_CHARS:
            return text[:_MAX_RAW_CHARS] + "... [clipped]"
    return raw
