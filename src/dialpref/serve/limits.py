"""Request bodies bounded in size, time and type, before FastAPI parses them.

A body over `max_bytes` is a 413 (checked on Content-Length and again on the bytes that arrive); a
client that sends its body slower than `read_timeout` seconds gets a 408, so a slow client holds one
connection, never the server. A body that is not declared JSON is a 415 that says so (curl's `-d`
sends a form type unless told `-H 'content-type: application/json'`).
"""

from __future__ import annotations

import asyncio
import json


async def _answer(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    def __init__(self, app, max_bytes: int, read_timeout: float = 10.0) -> None:
        self.app, self.max_bytes, self.read_timeout = app, max_bytes, read_timeout

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        kind = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
        if scope.get("method") in ("POST", "PUT", "PATCH") and declared not in (None, b"0") and \
                kind != b"application/json":
            return await _answer(send, 415, f"the body must be JSON (Content-Type: application/json), "
                                            f"not {kind.decode('latin-1')[:60]}")
        if declared is not None:
            if not declared.isdigit():
                return await _answer(send, 400, "Content-Length is not a number")
            if int(declared) > self.max_bytes:
                return await _answer(send, 413, f"body of {int(declared):,} bytes is over the "
                                                f"{self.max_bytes:,}-byte limit")
        body, more = bytearray(), True
        while more:
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout)
            except TimeoutError:
                return await _answer(send, 408, f"the body did not arrive within {self.read_timeout:g} s")
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await _answer(send, 413, f"body over the {self.max_bytes:,}-byte limit")
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)
