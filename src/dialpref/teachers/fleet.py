"""A fleet of OpenAI-compatible endpoints serving one model, used as one teacher (`--teacher URL1,URL2,...`).

Each request goes to the endpoint with the fewest requests in flight among those free to take one: under
its own concurrency limit, its own rate limit (`qps`), and out of its own backoff. A retryable failure
(429, 5xx, timeout, dropped connection) puts only that endpoint in backoff (Retry-After honoured) and the
next attempt goes elsewhere at once, so one slow or dead server slows the fleet by its share, no more.
The cache key names the model and what the first endpoint says it serves, not the URLs: adding or losing
an endpoint repays no call.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Sequence

import httpx

from dialpref.teachers.base import TeacherError
from dialpref.teachers.openai_compat import OpenAICompatTeacher, _Retry


@dataclass
class Endpoint:
    url: str
    in_flight: int = 0
    free_at: float = 0.0  # monotonic time before which it takes no request (its rate limit or its backoff)
    sent: int = 0
    failures: int = 0  # retryable failures in a row (its backoff grows with them)

    def as_dict(self) -> dict[str, Any]:
        return {"url": self.url, "sent": self.sent, "failures_in_a_row": self.failures}


class FleetTeacher(OpenAICompatTeacher):
    """`urls`: the endpoints; `concurrency` and `qps` (None: no rate limit) hold per endpoint."""

    def __init__(self, urls: Sequence[str], model: str, *, concurrency: int = 8, qps: float | None = None,
                 **options: Any) -> None:
        if not urls:
            raise ValueError("a fleet needs at least one endpoint URL")
        super().__init__(urls[0], model, concurrency=concurrency * len(urls), **options)
        self.endpoints = [Endpoint(OpenAICompatTeacher(u, model).base_url) for u in urls]
        self.per_endpoint, self.qps = concurrency, qps

    def identity(self) -> dict[str, Any]:
        found = super().identity()
        return {"fleet_model": found["model"], **({"served": found["served"]} if "served" in found else {})}

    async def _pick(self) -> Endpoint:
        """The least busy endpoint free to take a request now, waiting until one is."""
        while True:
            now = time.monotonic()
            free = [e for e in self.endpoints if e.in_flight < self.per_endpoint and e.free_at <= now]
            if free:
                chosen = min(free, key=lambda e: (e.in_flight, e.sent))
                chosen.in_flight += 1
                chosen.sent += 1
                if self.qps:
                    chosen.free_at = max(chosen.free_at, now) + 1.0 / self.qps
                return chosen
            # a busy endpoint frees up when one of its requests ends: look again soon; else at the
            # earliest end of a rate-limit gap or a backoff
            busy = any(e.free_at <= now for e in self.endpoints)
            await asyncio.sleep(0.005 if busy else min(e.free_at for e in self.endpoints) - now)

    async def _post(self, client: httpx.AsyncClient, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        last: TeacherError | None = None
        for attempt in range(self.max_retries + 1):
            endpoint = await self._pick()
            try:
                body = await self._send(client, endpoint.url, path, payload)
                endpoint.failures = 0
                return body
            except _Retry as err:
                last = err.error
                self.retries_made += attempt < self.max_retries
                endpoint.free_at = max(endpoint.free_at, time.monotonic() + self._delay(endpoint.failures,
                                                                                         last.retry_after))
                endpoint.failures += 1
            finally:
                endpoint.in_flight -= 1
        raise TeacherError(f"{len(self.endpoints)} endpoints: {path} failed after {self.max_retries + 1} attempts; "
                           f"last: {last}", kind=last.kind if last else "teacher error")

    def stats(self) -> list[dict[str, Any]]:
        return [e.as_dict() for e in self.endpoints]
