"""What dialpref asks of a teacher, built on the protocol's two primitives.

- `sample`: n answers to one prompt; sample i uses seed + i, so each sample is
  its own cache entry and a rerun reproduces it.
- `structured`: an answer that must validate against a pydantic model; the
  JSON schema constrains decoding where the backend can, and an invalid answer
  is sent back with the validation error for another try. Every raw output is
  kept, so provenance survives a failure.
- `option_probs`: a distribution over answer options from one forward pass.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Generic, Sequence, TypeVar

from pydantic import BaseModel, ValidationError

from dialpref.teachers.base import ChatRequest, Completion, Message, Teacher, TeacherError

M = TypeVar("M", bound=BaseModel)


def sample(teacher: Teacher, messages: Sequence[Message], *, n: int = 1, temperature: float = 0.7,
           top_p: float = 0.95, top_k: int | None = None, max_tokens: int = 256, seed: int = 0,
           json_schema: dict[str, Any] | None = None) -> list[Completion | Exception]:
    requests = [ChatRequest.make(messages, temperature=temperature, top_p=top_p, top_k=top_k,
                                 max_tokens=max_tokens, seed=seed + i, sample_index=i, json_schema=json_schema)
                for i in range(n)]
    return teacher.complete_many(requests)


@dataclass
class StructuredResult(Generic[M]):
    value: M | None
    raw_outputs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    evaluated_prompt_tokens: int = 0  # after prefix reuse, where the backend reports it
    cached_calls: int = 0

    @property
    def ok(self) -> bool:
        return self.value is not None


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def extract_json(text: str) -> str:
    """The JSON part of a reply: inside a code fence, or from the first brace to the last."""
    fenced = _FENCE.search(text)
    if fenced:
        return fenced.group(1).strip()
    start, end = text.find("{"), text.rfind("}")
    return text[start:end + 1] if 0 <= start < end else text.strip()


def structured(teacher: Teacher, messages: Sequence[Message], schema: type[M], *, retries: int = 2,
               temperature: float = 0.0, max_tokens: int = 512, seed: int = 0,
               sample_index: int = 0) -> StructuredResult[M]:
    """Ask for JSON matching `schema`; on invalid output, say what was wrong and ask again."""
    json_schema = schema.model_json_schema()
    conversation = list(messages)
    result: StructuredResult[M] = StructuredResult(value=None)
    for attempt in range(retries + 1):
        # A retry at the same temperature tends to repeat the same mistake; warm it up a little.
        warmed = temperature if attempt == 0 else min(1.0, max(temperature, 0.3) + 0.3 * attempt)
        request = ChatRequest.make(conversation, json_schema=json_schema, temperature=warmed,
                                   max_tokens=max_tokens, seed=seed + 1000 * attempt, sample_index=sample_index)
        try:
            completion = teacher.complete(request)
        except TeacherError as err:
            result.errors.append(f"attempt {attempt + 1}: {err}")
            continue  # a failed call (after the client's own retries): the next attempt asks afresh
        result.raw_outputs.append(completion.text)
        result.prompt_tokens += completion.prompt_tokens
        result.completion_tokens += completion.completion_tokens
        result.evaluated_prompt_tokens += completion.extra.get("evaluated_prompt_tokens", completion.prompt_tokens)
        result.cached_calls += int(completion.cached)
        problem = _problem(completion, schema, result)
        if problem is None:
            return result
        mark_invalid(teacher, request, problem)
        result.errors.append(f"attempt {attempt + 1}: {problem}")
        if completion.text.strip():
            conversation = [*messages, {"role": "assistant", "content": completion.text},
                            {"role": "user", "content": f"That reply was not valid: {problem}. Reply again with "
                                                        f"only a JSON object that matches this schema: "
                                                        f"{json.dumps(json_schema)}"}]
        else:
            conversation = list(messages)  # an empty reply: ask the same again (new seed, warmer)
    return result


def _problem(completion: Completion, schema: type[M], result: StructuredResult[M]) -> str | None:
    """None when the reply validates (and is set on `result`), else what was wrong with it."""
    if not completion.text.strip():
        return "empty reply"
    try:
        # strict=False: grammars let raw newlines into strings; the meaning is plain enough to keep.
        result.value = schema.model_validate(json.loads(extract_json(completion.text), strict=False))
        return None
    except json.JSONDecodeError as err:
        return ("the JSON was cut off (hit max_tokens)" if completion.finish_reason == "length"
                else f"invalid JSON: {err.msg} at character {err.pos}")
    except ValidationError as err:
        return _short_error(err, completion)
    except RecursionError:
        return "JSON nested too deeply"


def mark_invalid(teacher: Teacher, request: ChatRequest, reason: str) -> None:
    """Tell a caching teacher that its answer to `request` was invalid (others keep nothing)."""
    marker = getattr(teacher, "mark_invalid", None)
    if marker is not None:
        marker(request, reason)


def _short_error(err: ValidationError, completion: Completion) -> str:
    if completion.finish_reason == "length":
        return "the JSON was cut off (hit max_tokens)"
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "the reply"
    return f"{where}: {first['msg']}" + (f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else "")


def option_probs(teacher: Teacher, messages: Sequence[Message], options: Sequence[str]) -> dict[str, float]:
    """P(option) from the next-token log-probabilities, renormalised over the options (sums to 1)."""
    scores = teacher.option_logprobs(messages, options)
    return normalise(scores.logprobs)


def normalise(logprobs: dict[str, float]) -> dict[str, float]:
    finite = [v for v in logprobs.values() if math.isfinite(v)]
    if not finite:
        return {k: 1.0 / len(logprobs) for k in logprobs}
    top = max(finite)
    weights = {k: (math.exp(v - top) if math.isfinite(v) else 0.0) for k, v in logprobs.items()}
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}
