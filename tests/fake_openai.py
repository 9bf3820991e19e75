"""A loopback HTTP server that speaks the OpenAI chat API, for injecting faults.

Real HTTP on 127.0.0.1 (no mock objects): the client under test goes through
its whole stack. `faults` is a queue of what the next requests get: an HTTP
status, a hang, a truncated body, a fixed reply text, or a hostile reply:
`body` (any JSON in place of the reply), `raw` bytes (with `headers`),
`echo_auth` (an error body that repeats the Authorization header after that
many characters), `close` (the connection dropped). With the queue empty, the
reply is `reply_for(payload)`. GET /v1/models lists `models` when it is set.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


class FakeOpenAI:
    def __init__(self, reply_for: Callable[[dict[str, Any]], str] | None = None, delay: float = 0.0) -> None:
        self.faults: deque[dict[str, Any]] = deque()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.reply_for = reply_for or (lambda payload: "ok")
        self.models: list[dict[str, Any]] | None = None
        self.top_logprobs = [{"token": "yes", "logprob": -0.2}, {"token": " no", "logprob": -1.8}]
        self.delay = delay
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models") and fake.models is not None:
                    self.send_response(200)
                    self._send(json.dumps({"object": "list", "data": fake.models}).encode())
                    return
                self.send_response(404)
                self._send(b'{"error": "not found"}')

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                payload = json.loads(self.rfile.read(length))
                with fake._lock:
                    fake.requests.append(payload)
                    fake.headers.append(dict(self.headers))
                    fault = fake.faults.popleft() if fake.faults else {}
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    self._answer(payload, fault)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def _answer(self, payload: dict[str, Any], fault: dict[str, Any]) -> None:
                time.sleep(fault.get("hang", fake.delay))
                if fault.get("close"):
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if "echo_auth" in fault:
                    body = ("x" * fault["echo_auth"] + "you sent " + self.headers.get("Authorization", "")).encode()
                    self.send_response(fault.get("status", 401))
                    self._send(body)
                    return
                if "raw" in fault or "body" in fault:
                    raw = fault["raw"] if "raw" in fault else json.dumps(fault["body"]).encode()
                    self.send_response(fault.get("status", 200))
                    for name, value in fault.get("headers", {}).items():
                        self.send_header(name, value)
                    self._send(raw)
                    return
                if "status" in fault:
                    body = json.dumps({"error": {"message": fault.get("message", "injected")}}).encode()
                    self.send_response(fault["status"])
                    if "retry_after" in fault:
                        self.send_header("Retry-After", str(fault["retry_after"]))
                    self._send(body)
                    return
                text = fault.get("text", fake.reply_for(payload))
                body = {"id": "fake", "object": "chat.completion", "model": payload.get("model"),
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                     "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
                if payload.get("logprobs"):
                    top = fault.get("top_logprobs", fake.top_logprobs)
                    body["choices"][0]["logprobs"] = {"content": [{"token": top[0]["token"],
                                                                   "logprob": top[0]["logprob"],
                                                                   "top_logprobs": top}]}
                raw = json.dumps(body).encode()
                if fault.get("truncate"):
                    raw = raw[: len(raw) // 2]
                self.send_response(200)
                self._send(raw)

            def _send(self, raw: bytes) -> None:
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                try:
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeOpenAI":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":  # a standalone fake for the kill -9 test's child process
    import sys

    fake = FakeOpenAI(reply_for=lambda p: json.dumps({"n": len(p["messages"][0]["content"])}),
                      delay=float(sys.argv[1]) if len(sys.argv) > 1 else 0.0)
    with fake:
        print(fake.url, flush=True)
        threading.Event().wait()
