"""A disk cache in front of any teacher: every completed call is stored the moment it returns.

Keys hash the backend, the model's identity, the call kind, the rendered
messages, every parameter and the sample index (HF datasets' rule: anything
that changes the result is in the key), so a changed prompt never gets a stale
answer and a run killed with `kill -9` repeats no call that had completed.
SQLite in WAL mode with one commit per call makes each stored call durable.
Nothing secret is stored: requests hold messages and parameters, never headers.
Processes sharing one cache claim a call before paying for it (see `claim`).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from dialpref.teachers.base import (BatchedMixin, ChatRequest, Completion, ContinuationScores, Message, OptionScores,
                                    ResultCallback, Teacher, TeacherError, stable_hash)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS stores (
    key TEXT NOT NULL,
    owner TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    at REAL NOT NULL
);
"""
# Bumped when the way an answer of that kind is produced or parsed changes: old entries stop matching.
CACHE_FORMATS = {"chat": 2, "options": 2, "causal": 2, "continuations": 2}
# A claim older than this is taken over (its owner may hang); a dead owner's claim at once.
CLAIM_SECONDS = 600.0
_POLL_SECONDS = 0.1


def _retry_locked(statement, seconds: float = 60.0):
    """Run `statement`, again while SQLite says the database is locked. Two processes opening a new cache at
    once both switch it to WAL; SQLite answers one of them "locked" at once, without its busy timeout."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return statement()
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class TeacherCache:
    """SQLite store of teacher calls, with hit and miss counters, shared safely by processes.

    Before paying for a call, a process claims its key; another process that
    needs the same call waits for the answer instead of paying twice.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=60)
        _retry_locked(lambda: self._db.execute("PRAGMA journal_mode=WAL"))
        self._db.execute("PRAGMA synchronous=NORMAL")
        _retry_locked(lambda: self._db.executescript(_SCHEMA))
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(calls)")}
        if "status" not in columns:  # caches written before invalid answers were marked
            self._db.execute("ALTER TABLE calls ADD COLUMN status TEXT NOT NULL DEFAULT 'ok'")
            self._db.execute("ALTER TABLE calls ADD COLUMN reason TEXT")
        self._lock = threading.Lock()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.hits = 0
        self.misses = 0
        self.waited = 0

    def lookup(self, key: str) -> tuple[dict[str, Any], str | None] | None:
        """(response, reason it was marked invalid or None), counted as a hit or a miss."""
        with self._lock:
            row = self._db.execute("SELECT response, status, reason FROM calls WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(row[0]), (row[2] or "invalid") if row[1] == "invalid" else None

    def get(self, key: str) -> dict[str, Any] | None:
        found = self.lookup(key)
        return None if found is None else found[0]

    def put(self, key: str, *, kind: str, backend: str, model: str, request: dict[str, Any],
            response: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO calls (key, kind, backend, model, request, response, created, status) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'ok')",
                (key, kind, backend, model, json.dumps(request, ensure_ascii=False),
                 json.dumps(response, ensure_ascii=False), time.time()))
            self._db.execute("INSERT INTO stores VALUES (?, ?, ?)", (key, self.owner, time.time()))
            self._db.execute("DELETE FROM claims WHERE key = ? AND owner = ?", (key, self.owner))

    def mark_invalid(self, key: str, reason: str) -> None:
        """Keep the answer, flagged: a rerun reads it as the invalid answer it was (or asks again with
        retry_failed), never as a good one."""
        with self._lock:
            self._db.execute("UPDATE calls SET status = 'invalid', reason = ? WHERE key = ?", (reason[:500], key))

    # --- claims: one payer per call across processes -------------------------------------------
    def claim(self, key: str) -> bool:
        """Whether this process may make the call for `key` now (no one else is making it)."""
        host, pid = self.owner.split(":")[:2]
        with self._lock:
            inserted = self._db.execute("INSERT OR IGNORE INTO claims VALUES (?, ?, ?, ?, ?)",
                                        (key, self.owner, host, int(pid), time.time())).rowcount
            if inserted:
                return True
            row = self._db.execute("SELECT owner, host, pid, at FROM claims WHERE key = ?", (key,)).fetchone()
            if row is None or row[0] == self.owner or _abandoned(row[1], row[2], row[3]):
                self._db.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?)",
                                 (key, self.owner, host, int(pid), time.time()))
                return True
        return False

    def release(self, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM claims WHERE key = ? AND owner = ?", (key, self.owner))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "stored": len(self)}

    def repeated_calls(self) -> int:
        """Calls paid again after an answer was stored (every process that ever used this cache file
        counted): what a resumed or a retried run must keep at 0."""
        with self._lock:
            stored, keys = self._db.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM stores").fetchone()
        return stored - keys

    def close(self) -> None:
        self._db.close()


def _abandoned(host: str, pid: int, at: float) -> bool:
    if time.time() - at > CLAIM_SECONDS:
        return True
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class CachedTeacher(BatchedMixin):
    """Wraps a teacher; identical calls are answered from the cache, new ones stored as they finish.

    `retry_failed`: answers marked invalid on an earlier run are asked again instead of re-read.
    """

    def __init__(self, teacher: Teacher, cache: TeacherCache, *, retry_failed: bool = False) -> None:
        self.teacher = teacher
        self.cache = cache
        self.backend = teacher.backend
        self.model = teacher.model
        self.retry_failed = retry_failed

    def identity(self) -> dict[str, Any]:
        return self.teacher.identity()

    def fits(self, messages: Sequence[Message]) -> bool:
        """The wrapped teacher's context rule (a teacher without one takes any prompt)."""
        fits = getattr(self.teacher, "fits", None)
        return fits(messages) if fits is not None else True

    def key(self, kind: str, payload: dict[str, Any]) -> str:
        """The cache key of a call of `kind` with `payload` to this teacher."""
        return stable_hash({"kind": kind, "backend": self.backend, "model": self.teacher.identity(),
                            "format": CACHE_FORMATS.get(kind, 1), **payload})

    def mark_invalid(self, request: ChatRequest, reason: str) -> None:
        """The answer to `request` did not validate: flag it in the cache (see TeacherCache.mark_invalid)."""
        self.cache.mark_invalid(self.key("chat", request.key_fields()), reason)

    def _stored(self, key: str) -> Completion | None:
        found = self.cache.lookup(key)
        if found is None:
            return None
        response, invalid = found
        if invalid is not None and self.retry_failed:
            return None
        extra = {**response.get("extra", {}), **({"invalid": invalid} if invalid else {})}
        return Completion(**{**response, "extra": extra, "cached": True})

    def complete_many(self, requests: Sequence[ChatRequest],
                      on_result: ResultCallback | None = None) -> list[Completion | Exception]:
        keys = [self.key("chat", r.key_fields()) for r in requests]
        results: list[Completion | Exception | None] = [None] * len(requests)

        def answer(index: int, result: Completion | Exception) -> None:
            results[index] = result
            if on_result is not None:
                on_result(index, result)

        pending = list(range(len(requests)))
        while pending:
            todo, waiting = [], []
            for index in pending:
                stored = self._stored(keys[index])
                if stored is not None:
                    answer(index, stored)
                elif self.cache.claim(keys[index]):
                    todo.append(index)
                else:
                    waiting.append(index)
            self._call(requests, keys, todo, answer)
            if waiting:
                self.cache.waited += len(waiting)
                time.sleep(_POLL_SECONDS)  # another process is paying for these: wait for its answers
            pending = waiting
        return results  # type: ignore[return-value]

    def _call(self, requests, keys, todo: list[int], answer) -> None:
        def store(position: int, result: Completion | Exception) -> None:
            index = todo[position]
            if isinstance(result, Completion):
                self.cache.put(keys[index], kind="chat", backend=self.backend, model=self.model,
                               request=requests[index].key_fields(), response=asdict(result))
            else:
                self.cache.release(keys[index])
            answer(index, result)

        if todo:
            try:
                self.teacher.complete_many([requests[i] for i in todo], on_result=store)
            finally:
                for index in todo:
                    self.cache.release(keys[index])

    def option_logprobs(self, messages: Sequence[Message], options: Sequence[str]) -> OptionScores:
        payload = {"messages": [dict(m) for m in messages], "options": list(options)}
        key = self.key("options", payload)
        while True:
            stored = self.cache.get(key)
            if stored is not None:
                return OptionScores(**{**stored, "cached": True})
            if self.cache.claim(key):
                break
            time.sleep(_POLL_SECONDS)
        try:
            scores = self.teacher.option_logprobs(messages, options)
        finally:
            self.cache.release(key)
        self.cache.put(key, kind="options", backend=self.backend, model=self.model, request=payload,
                       response={"logprobs": scores.logprobs, "prompt_tokens": scores.prompt_tokens})
        return scores

    def continuation_logprobs(self, messages: Sequence[Message],
                              groups: Sequence[tuple[str, Sequence[str]]]) -> ContinuationScores:
        """Whole-value scores through the cache (one entry per prompt and groups)."""
        score = getattr(self.teacher, "continuation_logprobs", None)
        if score is None:
            raise TeacherError(f"scoring whole values needs the embedded llama.cpp teacher; {self.backend} "
                               "cannot (use the votes estimator)")
        payload = {"messages": [dict(m) for m in messages], "groups": [[lead, list(c)] for lead, c in groups]}
        key = self.key("continuations", payload)
        stored = self._wait_or_claim(key, lambda: self.cache.get(key))
        if stored is not None:
            return ContinuationScores(**{**stored, "cached": True})
        try:
            result = score(messages, groups)
            self.cache.put(key, kind="continuations", backend=self.backend, model=self.model, request=payload,
                           response={"logprobs": result.logprobs, "prompt_tokens": result.prompt_tokens})
        finally:
            self.cache.release(key)
        return result

    def _wait_or_claim(self, key: str, lookup):
        """What `lookup` finds once it finds it, or None once this process holds the claim on `key` (the
        caller pays for the call, then releases): two processes never pay for the same call at once."""
        while True:
            found = lookup()
            if found is not None:
                return found
            if self.cache.claim(key):
                found = lookup()  # answered between the lookup and the claim: no need to pay
                if found is not None:
                    self.cache.release(key)
                return found
            time.sleep(_POLL_SECONDS)

    @property
    def evaluated_tokens(self) -> int | None:
        """Prompt tokens the wrapped teacher really ran (after prefix reuse), where it counts them."""
        return getattr(self.teacher, "evaluated_tokens", None)

    def stream_option_logprobs(self, head: str, segments: Sequence[str], ask: str,
                               options: Sequence[str]) -> list[OptionScores]:
        """Causal labelling through the cache: each segment's answer is kept under the full text it was
        answered from, so the wrapped teacher reads a dialogue again only when one of its answers is missing."""
        stream = getattr(self.teacher, "stream_option_logprobs", None)
        if stream is None:  # no cache holds its answers either: only such a teacher makes them
            raise TeacherError("causal mode needs the embedded llama.cpp teacher (it keeps and rolls back the "
                               f"KV state between utterances); {self.backend} cannot")
        payloads = [{"text": head + "".join(segments[:i + 1]) + ask, "options": list(options)}
                    for i in range(len(segments))]
        keys = [self.key("causal", payload) for payload in payloads]

        def every_answer():
            answers = [self.cache.get(key) for key in keys]
            return answers if all(a is not None for a in answers) else None

        complete = self._wait_or_claim(keys[-1], every_answer)  # one read of the dialogue pays for all
        if complete is not None:
            return [OptionScores(**answer, cached=True) for answer in complete]  # type: ignore[arg-type]
        stored = [self.cache.get(key) for key in keys]
        try:
            for i, result in enumerate(stream(head, segments, ask, options)):
                if stored[i] is None:
                    stored[i] = _causal_answer(result)
                    self.cache.put(keys[i], kind="causal", backend=self.backend, model=self.model,
                                   request=payloads[i], response=stored[i])
        finally:
            self.cache.release(keys[-1])
        return [OptionScores(**answer) for answer in stored]  # type: ignore[arg-type]


def _causal_answer(result: OptionScores) -> dict[str, Any]:
    """What the cache keeps of one causal answer (truncation only when there was some)."""
    stored: dict[str, Any] = {"logprobs": result.logprobs, "prompt_tokens": result.prompt_tokens}
    if result.turns_dropped or result.utterance_cut:
        stored.update(turns_dropped=result.turns_dropped, utterance_cut=result.utterance_cut)
    return stored

