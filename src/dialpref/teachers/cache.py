"""A disk cache in front of any teacher: every completed call is stored the moment it returns.

Keys hash the backend, the model's identity, the call kind, the rendered
messages, every parameter and the sample index (HF datasets' rule: anything
that changes the result is in the key), so a changed prompt never gets a stale
answer and a run killed with `kill -9` repeats no call that had completed.
SQLite in WAL mode with one commit per call makes each stored call durable.
Nothing secret is stored: requests hold messages and parameters, never headers.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from dialpref.teachers.base import (BatchedMixin, ChatRequest, Completion, Message, OptionScores,
                                    ResultCallback, Teacher, stable_hash)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL
)
"""


class TeacherCache:
    """SQLite store of teacher calls, with hit and miss counters."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT response FROM calls WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(row[0])

    def put(self, key: str, *, kind: str, backend: str, model: str, request: dict[str, Any],
            response: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, kind, backend, model, json.dumps(request, ensure_ascii=False),
                 json.dumps(response, ensure_ascii=False), time.time()))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "stored": len(self)}

    def close(self) -> None:
        self._db.close()


class CachedTeacher(BatchedMixin):
    """Wraps a teacher; identical calls are answered from the cache, new ones stored as they finish."""

    def __init__(self, teacher: Teacher, cache: TeacherCache) -> None:
        self.teacher = teacher
        self.cache = cache
        self.backend = teacher.backend
        self.model = teacher.model

    def identity(self) -> dict[str, Any]:
        return self.teacher.identity()

    def fits(self, messages: Sequence[Message]) -> bool:
        """The wrapped teacher's context rule (a teacher without one takes any prompt)."""
        fits = getattr(self.teacher, "fits", None)
        return fits(messages) if fits is not None else True

    def key(self, kind: str, payload: dict[str, Any]) -> str:
        """The cache key of a call of `kind` with `payload` to this teacher."""
        return stable_hash({"kind": kind, "backend": self.backend, "model": self.teacher.identity(),
                            **payload})

    def complete_many(self, requests: Sequence[ChatRequest],
                      on_result: ResultCallback | None = None) -> list[Completion | Exception]:
        keys = [self.key("chat", r.key_fields()) for r in requests]
        results: list[Completion | Exception | None] = [None] * len(requests)
        todo: list[int] = []
        for index, key in enumerate(keys):
            stored = self.cache.get(key)
            if stored is None:
                todo.append(index)
                continue
            results[index] = Completion(**{**stored, "cached": True})
            if on_result is not None:
                on_result(index, results[index])

        def store(position: int, result: Completion | Exception) -> None:
            index = todo[position]
            results[index] = result
            if isinstance(result, Completion):
                self.cache.put(keys[index], kind="chat", backend=self.backend, model=self.model,
                               request=requests[index].key_fields(), response=asdict(result))
            if on_result is not None:
                on_result(index, result)

        if todo:
            self.teacher.complete_many([requests[i] for i in todo], on_result=store)
        return results  # type: ignore[return-value]

    def option_logprobs(self, messages: Sequence[Message], options: Sequence[str]) -> OptionScores:
        payload = {"messages": [dict(m) for m in messages], "options": list(options)}
        key = self.key("options", payload)
        stored = self.cache.get(key)
        if stored is not None:
            return OptionScores(**{**stored, "cached": True})
        scores = self.teacher.option_logprobs(messages, options)
        self.cache.put(key, kind="options", backend=self.backend, model=self.model, request=payload,
                       response={"logprobs": scores.logprobs, "prompt_tokens": scores.prompt_tokens})
        return scores
