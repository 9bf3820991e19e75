"""The teacher protocol: what every LLM backend offers, whatever runs it.

Two primitives are enough for everything dialpref asks of a teacher:
`complete` (one sampled chat completion, optionally constrained to a JSON
schema) and `option_logprobs` (the log-probability of each answer option as
the next token, from one forward pass). Sampling n answers, structured output
with retries and option distributions are built on them in `calls.py`, so the
cache sees every single call.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

Message = dict[str, str]


class TeacherError(RuntimeError):
    """A call that failed (after its retries, where retrying can help); the message never holds credentials.

    `kind` is the reason without its details ('HTTP 500', 'malformed reply', 'timeout'...), what a
    run counts its failures by; `retryable` says whether asking again may succeed."""

    def __init__(self, message: str, *, kind: str = "teacher error", retryable: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion: the messages and every parameter that changes the answer."""

    messages: tuple[tuple[tuple[str, str], ...], ...]
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int | None = None
    max_tokens: int = 256
    seed: int = 0
    sample_index: int = 0
    json_schema: str | None = None  # canonical JSON text of the schema, hashable
    choices: tuple[str, ...] | None = None  # the answer must be exactly one of these (where the backend can)

    @classmethod
    def make(cls, messages: Sequence[Message], *, json_schema: dict[str, Any] | None = None,
             choices: Sequence[str] | None = None, **params: Any) -> "ChatRequest":
        frozen = tuple(tuple(sorted((k, str(v)) for k, v in m.items())) for m in messages)
        # Key order is kept: a grammar emits properties in schema order (reasoning before the answer).
        schema = json.dumps(json_schema) if json_schema is not None else None
        return cls(messages=frozen, json_schema=schema, choices=tuple(choices) if choices else None, **params)

    @property
    def message_list(self) -> list[Message]:
        return [dict(m) for m in self.messages]

    @property
    def schema(self) -> dict[str, Any] | None:
        return json.loads(self.json_schema) if self.json_schema else None

    def key_fields(self) -> dict[str, Any]:
        fields = asdict(self)
        fields["messages"] = self.message_list
        if fields["choices"] is None:
            del fields["choices"]  # keeps the keys of calls stored before `choices` existed
        else:
            fields["choices"] = list(fields["choices"])
        return fields


@dataclass
class Completion:
    text: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptionScores:
    """Log-probabilities of each option's first token as the next token; missing ones are -inf."""

    logprobs: dict[str, float]
    prompt_tokens: int = 0
    cached: bool = False
    # set when the prompt did not fit the teacher's context (see `fit_context` in label/context.py)
    turns_dropped: int = 0  # preceding turns the teacher did not see
    utterance_cut: bool = False  # the utterance itself was cut to its head and tail


@dataclass
class ContinuationScores:
    """Per group of continuations, log P(continuation | prompt + the group's lead), every token counted
    (whole multi-token values, for slot tasks); backends that can score a given text offer it."""

    logprobs: list[dict[str, float]]
    prompt_tokens: int = 0
    cached: bool = False


ResultCallback = Callable[[int, "Completion | Exception"], None]


@runtime_checkable
class Teacher(Protocol):
    backend: str
    model: str

    def identity(self) -> dict[str, Any]:
        """Everything about the model that changes its answers (name, file hash, server URL)."""

    def complete(self, request: ChatRequest) -> Completion: ...

    def complete_many(self, requests: Sequence[ChatRequest],
                      on_result: ResultCallback | None = None) -> list[Completion | Exception]: ...

    def option_logprobs(self, messages: Sequence[Message], options: Sequence[str]) -> OptionScores: ...


class SequentialMixin:
    """`complete_many` for backends that run one call at a time (embedded models)."""

    def complete_many(self, requests: Sequence[ChatRequest],
                      on_result: ResultCallback | None = None) -> list[Completion | Exception]:
        results: list[Completion | Exception] = []
        for index, request in enumerate(requests):
            try:
                result: Completion | Exception = self.complete(request)  # type: ignore[attr-defined]
            except TeacherError as err:
                result = err
            results.append(result)
            if on_result is not None:
                on_result(index, result)
        return results


class BatchedMixin:
    """`complete` for backends whose natural unit is a batch (servers, the cache)."""

    def complete(self, request: ChatRequest) -> Completion:
        result = self.complete_many([request])[0]  # type: ignore[attr-defined]
        if isinstance(result, Exception):
            raise result
        return result


def stable_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
