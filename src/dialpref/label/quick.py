"""Label each utterance with a distribution over a task's classes, from one teacher forward pass.

This is the expected-value estimator with a single prompt; the labelling
issue adds the prompt bank, sampled votes and calibration on top of it.
"""

from __future__ import annotations

import time
from functools import lru_cache
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Iterable, Iterator

import jinja2

from dialpref.data.schema import Dialogue
from dialpref.label.tasks import TaskSpec
from dialpref.teachers.base import Teacher, TeacherError
from dialpref.teachers.calls import option_probs

PROMPT_ID = "multiple_choice@v1"
_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)


@lru_cache(maxsize=None)
def _template() -> jinja2.Template:
    text = resources.files("dialpref.label").joinpath("prompts/multiple_choice.jinja").read_text()
    return _ENV.from_string(text)


def render_prompt(task: TaskSpec, dialogue: Dialogue, target: int) -> list[dict[str, str]]:
    turns = dialogue.turns
    if task.context_turns is not None:
        start = max(0, target - task.context_turns)
        turns, target = turns[start:target + 1], target - start
    content = _template().render(classes=task.classes, turns=turns, target=target)
    return [{"role": "user", "content": content}]


@dataclass
class LabelStats:
    labelled: int = 0
    failed: int = 0
    seconds: float = 0.0
    prompt_tokens: int = 0
    per_class: dict[str, int] = field(default_factory=dict)


def label_dialogues(teacher: Teacher, dialogues: Iterable[Dialogue], task: TaskSpec,
                    stats: LabelStats | None = None, on_row=None) -> Iterator[dict[str, Any]]:
    """One row per labelled utterance: ids, text, S per class, gold, and provenance."""
    stats = stats if stats is not None else LabelStats()
    for dialogue in dialogues:
        for index, turn in enumerate(dialogue.turns):
            if turn.role not in task.roles:
                continue
            messages = render_prompt(task, dialogue, index)
            started = time.perf_counter()
            row: dict[str, Any] = {"dialogue_id": dialogue.id, "turn_index": index, "speaker": turn.speaker,
                                   "text": turn.text, "gold": task.gold(turn.labels), "task": task.name,
                                   "prompt_id": PROMPT_ID, "teacher": teacher.model}
            try:
                scores = option_probs(teacher, messages, list(task.classes))
                row["scores"] = scores
                row["predicted"] = max(scores, key=scores.get)
                stats.labelled += 1
                stats.per_class[row["predicted"]] = stats.per_class.get(row["predicted"], 0) + 1
            except TeacherError as err:
                row["scores"], row["predicted"], row["error"] = None, None, str(err)
                stats.failed += 1
            stats.seconds += time.perf_counter() - started
            if on_row is not None:
                on_row(row)
            yield row
