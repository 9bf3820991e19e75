"""A `dialpref serve` process on 127.0.0.1 for the tests and benchmarks, and the malformed-request battery."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(folder, *flags, timeout: float = 90.0):
    """Start `dialpref serve folder` as its own process; yield its URL once it says it listens."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "dialpref.cli", "serve", str(folder), "--port", str(port),
                                *map(str, flags)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline and "serving" not in line:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                raise RuntimeError(f"dialpref serve exited {process.returncode}: {process.stderr.read()[-2000:]}")
        if "serving" not in line:
            raise RuntimeError("dialpref serve did not start in time")
        process.url = f"http://127.0.0.1:{port}"
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def raw_http(port: int, data: bytes, timeout: float = 10.0) -> int:
    """Send bytes as they are (no client library fixing them up); the status the server answers, 0 for none."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        reply = b""
        try:
            while b"\r\n" not in reply:
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
        except socket.timeout:
            return 0
    parts = reply.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def _post(body, kind: str = "application/json") -> dict:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {"method": "POST", "url": "/v1/classify", "content": data, "headers": {"content-type": kind}}


def bad_requests(max_body_bytes: int) -> dict[str, dict]:
    """Malformed requests, each of which must be answered 4xx (httpx arguments by kind)."""
    big = "x" * 19_000
    return {
        "not_json": _post(b"{utterances: [}"),
        "json_not_object": _post([1, 2, 3]),
        "empty_object": _post({}),
        "both_utterances_and_dialogues": _post({"utterances": [{"text": "a"}], "dialogues": [{"turns": [{"text": "b"}]}]}),
        "empty_utterance_list": _post({"utterances": []}),
        "no_text": _post({"utterances": [{"speaker": "A"}]}),
        "blank_text": _post({"utterances": [{"text": "   \n"}]}),
        "text_is_number": _post({"utterances": [{"text": 42}]}),
        "text_is_list": _post({"utterances": [{"text": ["a", "b"]}]}),
        "utterance_is_string_not_object": _post({"utterances": ["hello"]}),
        "unknown_field": _post({"utterances": [{"text": "a", "colour": "red"}]}),
        "unknown_role": _post({"utterances": [{"text": "a", "role": "narrator"}]}),
        "empty_speaker": _post({"utterances": [{"text": "a", "speaker": ""}]}),
        "context_not_list": _post({"utterances": [{"text": "a", "context": "earlier"}]}),
        "context_turn_without_text": _post({"utterances": [{"text": "a", "context": [{"speaker": "B"}]}]}),
        "dialogue_without_turns": _post({"dialogues": [{"id": "x", "turns": []}]}),
        "turn_too_long": _post({"utterances": [{"text": big + big}]}),
        "too_many_utterances": _post({"utterances": [{"text": "a"}] * 600}),
        "body_over_limit": _post({"utterances": [{"text": big}] * (max_body_bytes // 19_000 + 2)}),
        "form_content_type": _post(b"text=hello", "application/x-www-form-urlencoded"),
        "invalid_utf8": _post(b'{"utterances": [{"text": "\xff\xfe"}]}'),
        "wrong_method": {"method": "GET", "url": "/v1/classify"},
        "unknown_path": {"method": "POST", "url": "/v1/clasify", "json": {"utterances": [{"text": "a"}]}},
        "unknown_session_turn": {"method": "POST", "url": "/v1/sessions/nope/turns", "json": {"text": "a"}},
        "unknown_session_delete": {"method": "DELETE", "url": "/v1/sessions/nope"},
        "session_turn_without_text": {"method": "POST", "url": "/v1/sessions/nope/turns", "json": {"speaker": "A"}},
    }


RAW_BAD = {  # bytes a client library would never send
    "content_length_not_a_number": b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                   b"Content-Length: ten\r\n\r\n{}",
    "garbage_request_line": b"HELLO\r\n\r\n",
    "declared_length_over_limit": b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                  b"Content-Length: 99999999999\r\n\r\n{",
}
