"""The synthesis stages: one teacher call each, validated against its schema, retried with the error.

Every stage's prompt is the shared system message plus a user message; stages
that need the conversation put the history first, so consecutive history
stages share a prompt prefix (llama.cpp reuses its KV state; servers with
prompt caching bill it cheaper). Stages that judge the real next turn (gold
category, scoring, gold view) do not need the history and leave it out, which
is where most of the token saving over the reference comes from.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, TypeVar

import jinja2
from pydantic import BaseModel

from dialpref.teachers.base import Teacher
from dialpref.teachers.calls import structured

M = TypeVar("M", bound=BaseModel)

# Stage name -> (template, needs the history). Token caps follow from each schema's bounds.
STAGES: dict[str, tuple[str, bool]] = {
    "gold_category": ("gold_category.jinja", False),
    "intent_tree": ("intent_tree.jinja", True),
    "category_reasoning": ("category_reasoning.jinja", True),
    "insight": ("insight.jinja", True),
    "scoring": ("scoring.jinja", False),
    "negative_scoring": ("scoring.jinja", False),  # the same question about another turn (proutt.checks)
    "gold_view": ("gold_view.jinja", False),
    "revision": ("revision.jinja", True),
    "negative": ("negative.jinja", True),
}
# A pessimistic rate, so a bounded answer is not cut off: at 3, 3 of 32 ShareGPT samples still hit the
# cap (code and whitespace tokenise finely). The cap bounds cost; answers mostly stop well before it.
CHARS_PER_TOKEN = 2


def token_cap(schema: dict[str, Any]) -> int:
    """The most tokens an answer within `schema`'s bounds can take (strings at maxLength, lists at maxItems)."""
    defs = schema.get("$defs", {})

    def chars(node: dict[str, Any]) -> int:
        if "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[-1]]
        if "enum" in node:
            return max(len(json.dumps(v)) for v in node["enum"])
        kind = node.get("type")
        if kind == "string":
            return node.get("maxLength", 400) + 4
        if kind == "array":
            return node.get("maxItems", 4) * (chars(node["items"]) + 2) + 4
        if kind == "object":
            return sum(len(name) + 6 + chars(sub) for name, sub in node.get("properties", {}).items()) + 4
        return 8

    return chars(schema) // CHARS_PER_TOKEN + 16


@lru_cache(maxsize=None)
def _cap_of(schema: type[BaseModel]) -> int:
    return token_cap(schema.model_json_schema())


@lru_cache(maxsize=None)
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FunctionLoader(_load), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=False, autoescape=False)


def _load(name: str) -> str:
    return resources.files("dialpref.proutt").joinpath("prompts", name).read_text(encoding="utf-8")


def render(template: str, strip: bool = True, **variables: Any) -> str:
    """A prompt from prompts/<template>; `strip=False` keeps the variables' own edge whitespace."""
    text = _env().get_template(template).render(**variables)
    return text.strip() if strip else text


class StageFailed(RuntimeError):
    """A stage whose answer stayed invalid after its retries; carries what the teacher said."""

    def __init__(self, stage: str, reason: str, record: "StageRecord") -> None:
        super().__init__(f"stage {stage}: {reason}")
        self.stage = stage
        self.reason = reason
        self.record = record


@dataclass
class StageRecord:
    """Provenance of one stage: its raw outputs, errors, tokens and time."""

    stage: str
    attempts: int = 0
    raw_outputs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    evaluated_prompt_tokens: int = 0
    cached_calls: int = 0
    seconds: float = 0.0
    valid_first_try: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StageRunner:
    """Runs stages for one sample against one teacher, collecting their records."""

    teacher: Teacher
    history: str
    retries: int = 2
    temperature: float = 0.3
    seed: int = 0
    records: dict[str, StageRecord] = field(default_factory=dict)

    def messages(self, stage: str, **variables: Any) -> list[dict[str, str]]:
        template, with_history = STAGES[stage]
        task = render(template, **variables)
        user = f"{render('history.jinja', history=self.history)}\n\n{task}" if with_history else task
        return [{"role": "system", "content": render("system.jinja")}, {"role": "user", "content": user}]

    def run(self, stage: str, schema: type[M], **variables: Any) -> M:
        max_tokens = _cap_of(schema)
        started = time.perf_counter()
        result = structured(self.teacher, self.messages(stage, **variables), schema, retries=self.retries,
                            temperature=self.temperature, max_tokens=max_tokens,
                            seed=self.seed)
        record = StageRecord(stage=stage, attempts=len(result.raw_outputs), raw_outputs=result.raw_outputs,
                             errors=result.errors, prompt_tokens=result.prompt_tokens,
                             completion_tokens=result.completion_tokens,
                             evaluated_prompt_tokens=result.evaluated_prompt_tokens,
                             cached_calls=result.cached_calls, seconds=round(time.perf_counter() - started, 3),
                             valid_first_try=result.ok and not result.errors)
        self.records[stage] = record
        if result.value is None:
            raise StageFailed(stage, result.errors[-1] if result.errors else "no answer", record)
        return result.value
