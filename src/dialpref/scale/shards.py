"""A run's rows as JSONL shards beside its output: what resume reads, and what `datasets` loads as they come.

`<output stem>.shards/part-00007.jsonl` holds the rows (before any prior) of a group of whole dialogues, written
atomically, so a shard is there whole or not at all; `part-00007.rejects.jsonl` beside it the rows of that
group whose calls failed, with the reason. A killed run loses at most the shards it had not written; their
teacher calls are in the cache, so the rerun pays none of them again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from dialpref.files import atomic_write_text
from dialpref.rows import read_rows_strict


def shard_dir(output: Path) -> Path:
    return output.with_name(output.stem + ".shards")


def _shards(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("part-*.jsonl") if not p.name.endswith(".rejects.jsonl"))


def _lines(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def write_shard(folder: Path, rows: list[dict[str, Any]]) -> Path:
    """The next shard of `folder`, atomically, and its rejects (rows with errors or without scores)."""
    folder.mkdir(parents=True, exist_ok=True)
    existing = _shards(folder)
    index = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
    path = folder / f"part-{index:05d}.jsonl"
    failed = [{"record_id": f"{r['dialogue_id']}#{r['turn_index']}", "reason": "; ".join(r["errors"][:3])
               or "no prompt answered", "row": r} for r in rows if r["errors"] or r["scores"] is None]
    if failed:
        atomic_write_text(folder / f"part-{index:05d}.rejects.jsonl", _lines(failed))
    atomic_write_text(path, _lines(rows))
    return path


def read_shards(folder: Path) -> list[dict[str, Any]]:
    """Every row of every shard, in shard order (a damaged shard raises with its file and line)."""
    return [row for path in _shards(folder) for row in read_rows_strict(path)] if folder.exists() else []


def done_dialogues(folder: Path) -> set[str]:
    """Ids of the dialogues the shards hold: a rerun labels only the others."""
    return {row["dialogue_id"] for row in read_shards(folder)}


def clear(folder: Path) -> None:
    """Remove a finished run's shards (`--fresh`)."""
    for path in folder.glob("part-*.jsonl") if folder.exists() else []:
        path.unlink()
