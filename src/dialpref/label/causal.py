"""Causal labelling: read the dialogue once, ask after each utterance as it arrives.

The physical floor of labelling cost is reading every utterance once. Here
the instructions are read once, then each turn is appended to the KV state
and followed by a three-token question ("Class:"); the question's KV state is
dropped before the next turn, so a label costs its own turn plus the question.
The teacher sees only the past, as a live labeller would. It needs the
embedded llama.cpp teacher (a server cannot keep and roll back KV state), in
plain completion form (no chat template: its per-message wrapper would cost
more tokens than the short question).

Each utterance's answer is cached under the full text it was answered from,
so an interrupted run repeats no finished dialogue.
"""

from __future__ import annotations

import json
from typing import Any

from dialpref.data.schema import Dialogue
from dialpref.label.bank import environment
from dialpref.label.scoring import ScoringConfig, finish_row, new_row
from dialpref.label.tasks import TaskSpec
from dialpref.teachers.base import OptionScores, Teacher, TeacherError
from dialpref.teachers.cache import CachedTeacher
from dialpref.teachers.calls import normalise

PROMPT_ID = "causal@v1"


def causal_pieces(task: TaskSpec, dialogue: Dialogue, instructions: str | None = None) -> tuple[str, list[str], str]:
    """The head (instructions), one text segment per turn, and the question asked after each."""
    module = environment().get_template("causal.jinja").module
    head = str(module.head(task, instructions))
    segments = [str(module.turn(i + 1, turn)) for i, turn in enumerate(dialogue.turns)]
    return head, segments, str(module.ask(task))


def _embedded(teacher: Teacher):
    inner = teacher.teacher if isinstance(teacher, CachedTeacher) else teacher
    if not hasattr(inner, "stream_option_logprobs"):
        raise TeacherError("causal mode needs the embedded llama.cpp teacher (it keeps and rolls back the KV "
                           f"state between utterances); {teacher.backend} cannot")
    return inner


def label_causal(teacher: Teacher, task: TaskSpec, dialogue: Dialogue,
                 instructions: str | None = None) -> list[dict[str, Any]]:
    """Rows like the expected estimator's, from one causal pass over the dialogue."""
    head, segments, ask = causal_pieces(task, dialogue, instructions)
    options = task.class_names
    cache = teacher.cache if isinstance(teacher, CachedTeacher) else None
    keys = [teacher.key("causal", {"text": head + "".join(segments[:i + 1]) + ask, "options": options})
            if cache is not None else None for i in range(len(segments))]
    stored = [cache.get(k) if cache is not None else None for k in keys]
    targets = [i for i, t in enumerate(dialogue.turns) if task.labelled(t)]
    if any(stored[i] is None for i in targets):
        results = _embedded(teacher).stream_option_logprobs(head, segments, ask, options)
        for i, result in enumerate(results):
            if cache is not None and stored[i] is None:
                cache.put(keys[i], kind="causal", backend=teacher.backend, model=teacher.model,
                          request={"text": head + "".join(segments[:i + 1]) + ask, "options": options},
                          response=_stored(result))
            stored[i] = _stored(result)
    config = ScoringConfig(estimator="expected")
    rows = []
    for i in targets:
        scores = OptionScores(**stored[i])
        row = new_row(task, dialogue, i, teacher, config)
        row["prompt_ids"] = [PROMPT_ID]
        row["per_prompt"] = {PROMPT_ID: normalise(scores.logprobs)}
        row["raw_outputs"] = [{"prompt_id": PROMPT_ID, "class": None, "output": json.dumps(scores.logprobs)}]
        row["prompt_tokens"] = scores.prompt_tokens
        if scores.turns_dropped or scores.utterance_cut:
            row["truncation"] = {"turns_dropped": scores.turns_dropped, "utterance_cut": scores.utterance_cut}
        rows.append(finish_row(row, task))
    return rows


def _stored(result: OptionScores) -> dict[str, Any]:
    """What the cache keeps of one answer (truncation only when there was some)."""
    stored: dict[str, Any] = {"logprobs": result.logprobs, "prompt_tokens": result.prompt_tokens}
    if result.turns_dropped or result.utterance_cut:
        stored.update(turns_dropped=result.turns_dropped, utterance_cut=result.utterance_cut)
    return stored
