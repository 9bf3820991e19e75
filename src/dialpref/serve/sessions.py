"""Live dialogues on the server: one `StreamingClassifier` per session, bounded in number and idle time.

A session holds only the last k turns (the student's window), so a long conversation costs no more
memory than a short one. The least recently used session goes first when the store is full.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict

from dialpref.student.stream import StreamingClassifier


class UnknownSession(KeyError):
    pass


class SessionStore:
    def __init__(self, predictor, max_sessions: int = 10_000, idle_seconds: float = 3600.0) -> None:
        self.predictor, self.max_sessions, self.idle_seconds = predictor, max_sessions, idle_seconds
        self._sessions: OrderedDict[str, tuple[StreamingClassifier, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self) -> str:
        self._expire()
        while len(self._sessions) >= self.max_sessions:
            self._sessions.popitem(last=False)
        session_id = secrets.token_urlsafe(12)
        self._sessions[session_id] = (StreamingClassifier(self.predictor, dialogue_id=session_id), time.monotonic())
        return session_id

    def get(self, session_id: str) -> StreamingClassifier:
        self._expire()
        if session_id not in self._sessions:
            raise UnknownSession(session_id)
        stream, _ = self._sessions.pop(session_id)
        self._sessions[session_id] = (stream, time.monotonic())  # most recent last
        return stream

    def close(self, session_id: str) -> None:
        if self._sessions.pop(session_id, None) is None:
            raise UnknownSession(session_id)

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.idle_seconds
        while self._sessions:
            oldest = next(iter(self._sessions))
            if self._sessions[oldest][1] >= cutoff:
                break
            del self._sessions[oldest]
