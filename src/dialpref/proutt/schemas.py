"""The JSON each synthesis stage must return, as pydantic models.

Sizes are bounded in the schema (list lengths, and string lengths as
`maxLength`), so constrained decoding (llama.cpp grammars, servers'
`response_format`) cannot ramble on: completion tokens are most of what a
sample costs. Servers that ignore `maxLength` get their long strings clipped
on validation rather than rejected. Validation adds what a grammar cannot say
(predictions that differ, scores on the 0.1 grid).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, field_validator

Category = Literal["Statement", "Question", "Instruction"]
CATEGORIES: tuple[str, ...] = ("Statement", "Question", "Instruction")
View = Literal["Mining", "Exploration"]
SIMILARITY_GRID = [round(i / 10, 1) for i in range(11)]



def clipped(limit: int):
    """A non-empty string of at most `limit` characters: bound in the schema, clipped on validation."""
    return Annotated[str, Field(min_length=1, json_schema_extra={"maxLength": limit}),
                     AfterValidator(lambda s: _clip(s, limit))]


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    if not text:
        raise ValueError("empty text")
    return text if len(text) <= limit else text[:limit].rstrip() + "..."


Short = clipped(40)
Reason = clipped(160)
Utterance = clipped(160)


def _distinct(predictions: list[str]) -> list[str]:
    cleaned = [p.strip() for p in predictions]
    if any(not p for p in cleaned):
        raise ValueError("a prediction is empty")
    if len({p.lower() for p in cleaned}) < len(cleaned):
        raise ValueError("the predictions repeat each other; give different ones")
    return cleaned


class Attribute(BaseModel):
    name: Short
    value: Short


class Topic(BaseModel):
    topic: Short
    attributes: list[Attribute] = Field(min_length=1, max_length=3)


class IntentTree(BaseModel):
    """Stage 1: topic -> {attribute: short value}, two levels."""

    topics: list[Topic] = Field(min_length=1, max_length=2)

    def as_tree(self) -> dict[str, dict[str, str]]:
        tree: dict[str, dict[str, str]] = {}
        for topic in self.topics:
            tree.setdefault(topic.topic, {}).update({a.name: a.value for a in topic.attributes})
        return tree


class CategoryReasoning(BaseModel):
    """Stage 2: why the next user turn could be each category."""

    statement: Reason
    question: Reason
    instruction: Reason

    def for_category(self, category: str) -> str:
        return getattr(self, category.lower())


class GoldCategory(BaseModel):
    """Stage 3: the category the real next turn has."""

    reasoning: Reason
    category: Category


class ViewPrediction(BaseModel):
    reasoning: clipped(240)
    path: clipped(80)
    predictions: list[Utterance] = Field(min_length=2, max_length=2)

    @field_validator("predictions")
    @classmethod
    def _differ(cls, predictions: list[str]) -> list[str]:
        return _distinct(predictions)


class Insight(BaseModel):
    """Stage 4: the mining and the exploration view, two predicted next turns each."""

    mining: ViewPrediction
    exploration: ViewPrediction

    def predictions(self) -> list[str]:
        return [*self.mining.predictions, *self.exploration.predictions]


class Score(BaseModel):
    reason: clipped(100)
    similarity: Annotated[float, Field(json_schema_extra={"enum": SIMILARITY_GRID})]

    @field_validator("similarity")
    @classmethod
    def _on_grid(cls, value: float) -> float:
        if not 0.0 <= value <= 1.0:
            raise ValueError("similarity must lie in [0, 1]")
        return round(value, 1)


class Scores(BaseModel):
    """Stage 5: each of the four predictions against the real next turn."""

    scores: list[Score] = Field(min_length=4, max_length=4)

    @property
    def top_sim(self) -> float:
        return max(s.similarity for s in self.scores)


class PathEdge(BaseModel):
    source: Short
    target: clipped(60)

    def __str__(self) -> str:
        return f"{self.source} -> {self.target}"


class GoldView(BaseModel):
    """Stage 6: which view the real next turn took, and its best and secondary paths."""

    view_reasoning: Reason
    view: View
    path_reasoning: Reason
    paths: list[PathEdge] = Field(min_length=2, max_length=2)


class Revision(BaseModel):
    """Stage 8: reasoning revised toward the gold paths, with two new predictions."""

    thinking: Reason
    revised: clipped(300)
    # The grammar asks for two; a server that ignores maxItems may give more, and they are cut to two
    # (as the reference does) rather than rejected.
    predictions: list[Utterance] = Field(min_length=2, json_schema_extra={"maxItems": 2})

    @field_validator("predictions")
    @classmethod
    def _two(cls, predictions: list[str]) -> list[str]:
        return _distinct(predictions[:2])


class NegativeRevision(Revision):
    """Stage 7's negative: first two paths the user will not take, then reasoning revised toward them.

    Its predictions may repeat each other: it becomes the rejected trace, which is meant to be worse,
    and small teachers repeat themselves often enough (8 of 32 ShareGPT samples with SmolLM2-135M) that
    insisting would throw away samples whose chosen side is fine.
    """

    wrong_paths: list[PathEdge] = Field(min_length=2, max_length=2)

    @field_validator("predictions")
    @classmethod
    def _two(cls, predictions: list[str]) -> list[str]:
        cleaned = [p.strip() for p in predictions[:2]]
        if not all(cleaned):
            raise ValueError("a prediction is empty")
        return cleaned

    @classmethod
    def model_json_schema(cls, *args, **kwargs):  # wrong paths first: the reasoning follows from them
        schema = super().model_json_schema(*args, **kwargs)
        schema["properties"] = {"wrong_paths": schema["properties"].pop("wrong_paths"), **schema["properties"]}
        return schema
