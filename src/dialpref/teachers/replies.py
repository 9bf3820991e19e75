"""The shapes of the server replies the client reads, checked before any field is used.

A server that answers something else (a string where an object belongs, a
token that is a number, a log-probability of 1000, no choices) gives a
`TeacherError` with the reason, which becomes a row's error, never a crash.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from dialpref.teachers.base import TeacherError

# A log-probability above this is not one (a little over 0 is rounding).
_MAX_LOGPROB = 1e-3


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class TopLogprob(_Lenient):
    token: str
    logprob: float

    @field_validator("logprob", mode="before")
    @classmethod
    def _a_log_probability(cls, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"logprob should be a number, got {type(value).__name__}")
        if math.isnan(value) or value > _MAX_LOGPROB:
            raise ValueError(f"logprob {value!r} is not a log-probability (it must be <= 0)")
        return float(min(value, 0.0))


class TokenLogprobs(_Lenient):
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class Logprobs(_Lenient):
    content: list[TokenLogprobs] | None = None


class ReplyMessage(_Lenient):
    content: str | None = None


def _or_none(kind: type) -> BeforeValidator:
    """A field a server may fill oddly without costing the answer: anything not a `kind` reads as None."""
    return BeforeValidator(lambda value: value if isinstance(value, kind) else None)


class Choice(_Lenient):
    message: ReplyMessage
    finish_reason: Annotated[str | None, _or_none(str)] = None
    logprobs: Logprobs | None = None


class Usage(BaseModel):
    """Token counts: a server that reports them oddly still has its answer read (counts become 0)."""

    model_config = ConfigDict(extra="ignore")
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @field_validator("prompt_tokens", "completion_tokens", mode="before")
    @classmethod
    def _count(cls, value: Any) -> int:
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class ChatReply(_Lenient):
    choices: list[Choice] = Field(min_length=1)
    usage: Annotated[Usage | None, _or_none(dict)] = None
    model: Annotated[str | None, _or_none(str)] = None


def parse_reply(body: Any, where: str) -> ChatReply:
    """The reply as a `ChatReply`, or a permanent TeacherError naming the first thing wrong with it."""
    try:
        return ChatReply.model_validate(body)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "the reply"
        message = first["msg"].removeprefix("Value error, ")
        if loc == "choices" and "at least 1" in message:
            message = "the reply has no choices"
        raise TeacherError(f"malformed reply from {where}: {loc}: {message}", kind="malformed reply") from None


def top_tokens(reply: ChatReply, where: str) -> list[tuple[str, float]]:
    """The first generated token's top alternatives, or an error saying the server gave none."""
    logprobs = reply.choices[0].logprobs
    if logprobs is None or not logprobs.content or not logprobs.content[0].top_logprobs:
        raise TeacherError(f"{where} returned no token log-probabilities (the server must support "
                           "logprobs / top_logprobs)", kind="no logprobs")
    return [(t.token, t.logprob) for t in logprobs.content[0].top_logprobs]
