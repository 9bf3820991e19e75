"""Task specs: what to label, the classes with one-line descriptions, whose turns, how much context."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: str  # binary | multiclass | slots
    classes: dict[str, str]  # class name -> one-line description
    gold_key: str | None = None  # the Turn.labels key holding the gold label
    roles: tuple[str, ...] = ("user", "assistant")  # whose turns are labelled
    context_turns: int | None = None  # None: the whole dialogue is visible
    gold_map: dict[str, str] = field(default_factory=dict)  # dataset label -> class name

    def gold(self, labels: dict) -> str | None:
        value = labels.get(self.gold_key) if self.gold_key else None
        if value is None:
            return None
        value = self.gold_map.get(str(value), str(value))
        return value if value in self.classes else None


BUILTIN: dict[str, TaskSpec] = {t.name: t for t in [
    TaskSpec("dialogue_act", "multiclass", {
        "inform": "gives information, an opinion or an answer",
        "question": "asks for information",
        "directive": "asks or tells the other person to do something (request, suggestion, advice)",
        "commissive": "commits the speaker to doing something (accept, offer, promise, refuse)",
    }, gold_key="dialogue_act"),
    TaskSpec("sentiment", "multiclass", {
        "negative": "expresses a negative feeling or attitude",
        "neutral": "expresses no clear feeling",
        "positive": "expresses a positive feeling or attitude",
    }, gold_key="sentiment"),
    TaskSpec("emotion", "multiclass", {
        "neutral": "no particular emotion", "joy": "happiness, delight", "surprise": "astonishment",
        "anger": "annoyance, rage", "sadness": "unhappiness, grief", "disgust": "revulsion",
        "fear": "anxiety, fright",
    }, gold_key="emotion", gold_map={"no emotion": "neutral", "happiness": "joy"}),
    TaskSpec("has_intent", "binary", {
        "yes": "the speaker wants something done or wants information",
        "no": "the speaker only chats, reacts or gives information",
    }, roles=("user",)),
]}


def load_task(name_or_path: str) -> TaskSpec:
    """A built-in task by name, or a YAML file with the same fields."""
    if name_or_path in BUILTIN:
        return BUILTIN[name_or_path]
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        raw = yaml.safe_load(path.read_text())
        raw["roles"] = tuple(raw.get("roles", ("user", "assistant")))
        return TaskSpec(**raw)
    raise ValueError(f"unknown task {name_or_path!r}: built-ins are {', '.join(BUILTIN)}, or pass a YAML file")
