"""Growing and pruning a prompt bank: teacher paraphrases of a seed prompt, and selection of the prompts
that score well enough on gold dev dialogues. Above scoring and the priors, so the bank itself stays a
plain description of prompts."""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from pydantic import BaseModel, Field

from dialpref.data.schema import Dialogue
from dialpref.evaluate.calibration_error import quality
from dialpref.label.bank import Bank, PromptSpec, default_instructions, environment
from dialpref.label.calibration import arrays
from dialpref.label.prior import apply_priors, estimate_priors
from dialpref.label.scoring import ScoringConfig, score_dialogue
from dialpref.label.tasks import TaskSpec
from dialpref.teachers.calls import structured


class Paraphrases(BaseModel):
    paraphrases: list[str] = Field(min_length=1)


def expand_bank(teacher, task: TaskSpec, seed: PromptSpec, n: int = 4) -> tuple[Bank, list[str]]:
    """The seed prompt plus up to n teacher paraphrases of its instructions (distinct, non-empty)."""
    original = seed.instructions or default_instructions(seed, task)
    content = environment().get_template("paraphrase.jinja").render(n=n, original=original)
    messages = [{"role": "user", "content": content}]
    result = structured(teacher, messages, Paraphrases, temperature=0.8, max_tokens=120 * n)
    problems = [f"expand: {e}" for e in result.errors]
    found: list[str] = []
    for text in (result.value.paraphrases if result.value else []):
        text = " ".join(str(text).split())
        if text and text.lower() != original.lower() and text not in found and len(text) < 400:
            found.append(text)
    prompts = [seed] + [PromptSpec(id=f"{seed.id.split('@')[0]}@para{i + 1}", template=seed.template, form=seed.form,
                                   answer=seed.answer, shots=seed.shots, instructions=text)
                        for i, text in enumerate(found[:n])]
    if len(found) < n:
        problems.append(f"expand: asked for {n} paraphrases, got {len(found)} usable")
    return Bank(prompts), problems


def select_bank(teacher, task: TaskSpec, bank: Bank, dialogues: Sequence[Dialogue], *,
                min_accuracy: float | None = None, max_ece: float = 1.0, prior: str = "none",
                buckets: int = 10) -> tuple[Bank, list[dict[str, Any]], float]:
    """Score each prompt alone on gold dev dialogues; keep those at or above the accuracy floor
    (default: the majority class) and at or below `max_ece`."""
    gold = [task.gold(t.labels) for d in dialogues for t in d.turns if task.labelled(t)]
    gold = [g for g in gold if g is not None]
    if not gold:
        raise ValueError(f"the dev dialogues carry no gold labels for task {task.name}")
    floor = min_accuracy if min_accuracy is not None else Counter(gold).most_common(1)[0][1] / len(gold)
    kept, table = [], []
    for prompt in bank.usable():
        single = Bank([prompt], bank.examples)
        config = ScoringConfig() if prompt.per_utterance else ScoringConfig(estimator="votes", votes=3)
        rows = [r for d in dialogues for r in score_dialogue(teacher, task, single, d, config)]
        if prior != "none":
            rows = apply_priors(rows, estimate_priors(prior, rows, task, teacher, single, dialogues), prior, task)
        probs, labels = arrays(rows, task.class_names)
        q = quality(probs, labels, buckets)
        ok = q["accuracy"] >= floor and q["ece"] <= max_ece
        table.append({"prompt": prompt.id, **q, "kept": ok})
        if ok:
            kept.append(prompt)
    return Bank(kept, bank.examples), table, floor
