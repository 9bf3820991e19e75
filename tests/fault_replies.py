"""Hostile replies for the loopback server (tests/fake_openai.py), each with what the client must do.

`retried`: the client asks again and the next (good) reply is used, so no row fails.
Otherwise the call fails with a TeacherError of `kind`: the row keeps the error, lands in
rejects, and the run goes on. `calls`: which kind of request the fault is served to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class HostileReply:
    name: str
    fault: dict[str, Any]
    calls: str  # "logprobs" (option probabilities) or "text" (sampled answers)
    retried: bool = False
    kind: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _logprobs(top) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": "yes"}, "finish_reason": "stop",
                         "logprobs": {"content": [{"token": "yes", "logprob": -0.1, "top_logprobs": top}]}}]}


HOSTILE: list[HostileReply] = [
    HostileReply("message_is_a_string", {"body": {"choices": [{"message": "positive"}]}}, "text",
                 kind="malformed reply"),
    HostileReply("token_is_a_number", {"body": _logprobs([{"token": 5, "logprob": -0.1}])}, "logprobs",
                 kind="malformed reply"),
    HostileReply("logprob_of_1000", {"body": _logprobs([{"token": "positive", "logprob": 1000}])}, "logprobs",
                 kind="malformed reply"),
    HostileReply("logprob_nan", {"raw": b'{"choices": [{"message": {"content": "x"}, "logprobs": {"content": '
                                       b'[{"top_logprobs": [{"token": "positive", "logprob": NaN}]}]}}]}'},
                 "logprobs", kind="malformed reply"),
    HostileReply("no_top_logprobs", {"body": _logprobs([])}, "logprobs", kind="no logprobs"),
    HostileReply("empty_choices", {"body": {"choices": []}}, "text", kind="malformed reply"),
    HostileReply("choices_null", {"body": {"choices": None}}, "logprobs", kind="malformed reply"),
    HostileReply("body_is_a_list", {"body": [1, 2, 3]}, "text", kind="malformed reply"),
    HostileReply("body_is_null", {"raw": b"null"}, "logprobs", kind="malformed reply"),
    HostileReply("completions_shape", {"body": {"choices": [{"text": "positive"}]}}, "text",
                 kind="malformed reply"),
    HostileReply("bad_gzip_body", {"raw": b"this is not gzip", "headers": {"Content-Encoding": "gzip"}}, "logprobs",
                 retried=True),
    HostileReply("html_page", {"raw": b"<html><body>502 Bad Gateway</body></html>",
                               "headers": {"Content-Type": "text/html"}}, "text", retried=True),
    HostileReply("truncated_body", {"truncate": True}, "logprobs", retried=True),
    HostileReply("dropped_connection", {"close": True}, "text", retried=True),
    HostileReply("http_429_retry_after", {"status": 429, "retry_after": "0"}, "logprobs", retried=True),
    HostileReply("http_429_bad_retry_after", {"status": 429, "retry_after": "soon"}, "text", retried=True),
    HostileReply("http_500", {"status": 500}, "text", retried=True),
    HostileReply("http_503", {"status": 503}, "logprobs", retried=True),
    HostileReply("hang_past_timeout", {"hang": 1.5}, "text", retried=True),
    HostileReply("http_400", {"status": 400, "message": "context length exceeded"}, "text", kind="HTTP 400"),
    HostileReply("http_404", {"status": 404}, "logprobs", kind="HTTP 404"),
    HostileReply("error_echoes_the_key", {"echo_auth": 190, "status": 401}, "text", kind="HTTP 401"),
    HostileReply("retried_error_echoes_the_key", {"echo_auth": 180, "status": 503}, "logprobs", retried=True),
    HostileReply("invalid_answer", {"text": "banana split"}, "text", kind="unparseable answer"),
    HostileReply("usage_garbage", {"body": {"choices": [{"message": {"content": "positive"}}], "usage": "lots",
                                            "model": 7}}, "text", retried=False, kind=""),
    HostileReply("huge_answer", {"text": "maybe " * 200_000}, "text", kind="unparseable answer"),
]


def hostile_cases(calls: str | None = None) -> list[HostileReply]:
    return [h for h in HOSTILE if calls is None or h.calls == calls]


def dialogues_jsonl(n: int = 2) -> str:
    """A small native JSONL of n two-turn dialogues with sentiment gold."""
    rows = []
    for i in range(n):
        turns = [{"speaker": "user", "role": "user", "text": f"I love this {i}", "labels": {"sentiment": "positive"}},
                 {"speaker": "assistant", "role": "assistant", "text": "Glad to hear", "labels": {"sentiment": "neutral"}}]
        rows.append(json.dumps({"id": f"h{i}", "turns": turns}))
    return "\n".join(rows) + "\n"
