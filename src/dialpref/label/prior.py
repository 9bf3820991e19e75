"""Label-prior correction without gold labels (contextual calibration, Zhao et al. 2021).

Small teachers answer one class for almost everything: their raw option
probabilities mix what the utterance says with a strong prior for certain
answer tokens. Dividing that prior out, p'(c) ∝ p(c) / prior(c), removes the
bias. Two gold-free estimates of the prior:

- `content_free_prior`: the teacher's answer on content-free utterances
  ("N/A", "", "[MASK]") placed in the real dialogues;
- `unlabelled_prior`: the mean distribution over the unlabelled utterances
  being labelled (no extra calls).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from dialpref.data.schema import Dialogue, Turn
from dialpref.label.quick import render_prompt
from dialpref.label.tasks import TaskSpec
from dialpref.teachers.base import Teacher
from dialpref.teachers.calls import option_probs

CONTENT_FREE = ("N/A", "[MASK]", "...")
PRIORS = ("none", "content_free", "unlabelled")


def mean_distribution(distributions: Iterable[dict[str, float]], classes: Sequence[str]) -> dict[str, float]:
    total = {c: 0.0 for c in classes}
    count = 0
    for dist in distributions:
        for c in classes:
            total[c] += dist[c]
        count += 1
    if not count:
        return {c: 1.0 / len(classes) for c in classes}
    return {c: v / count for c, v in total.items()}


def content_free_prior(teacher: Teacher, task: TaskSpec, dialogues: Sequence[Dialogue],
                       max_dialogues: int = 3) -> dict[str, float]:
    """The teacher's mean answer when the target utterance says nothing, in up to `max_dialogues` dialogues."""
    answers = []
    for dialogue in dialogues[:max_dialogues]:
        target = len(dialogue.turns)
        speaker = next((t for t in dialogue.turns if t.role in task.roles), dialogue.turns[0])
        for filler in CONTENT_FREE:
            probe_turn = Turn(speaker=speaker.speaker, role=speaker.role, text=filler)
            probe = Dialogue(id=dialogue.id, turns=[*dialogue.turns, probe_turn])
            answers.append(option_probs(teacher, render_prompt(task, probe, target), list(task.classes)))
    return mean_distribution(answers, list(task.classes))


def unlabelled_prior(rows: Iterable[dict[str, Any]], classes: Sequence[str]) -> dict[str, float]:
    return mean_distribution((r["scores"] for r in rows if r.get("scores")), classes)


def correct(scores: dict[str, float], prior: dict[str, float]) -> dict[str, float]:
    """p'(c) ∝ p(c) / prior(c), renormalised to sum to 1."""
    floor = 1e-6
    raw = {c: p / max(prior.get(c, floor), floor) for c, p in scores.items()}
    total = sum(raw.values()) or 1.0
    return {c: v / total for c, v in raw.items()}


def apply_prior(rows: list[dict[str, Any]], prior: dict[str, float], name: str) -> list[dict[str, Any]]:
    """Rows with `scores` corrected, the raw scores kept as `scores_raw`, and the prior recorded."""
    out = []
    for row in rows:
        if not row.get("scores"):
            out.append(row)
            continue
        scores = correct(row["scores"], prior)
        out.append({**row, "scores_raw": row["scores"], "scores": scores,
                    "predicted": max(scores, key=scores.get), "prior": {"kind": name, "values": prior}})
    return out
