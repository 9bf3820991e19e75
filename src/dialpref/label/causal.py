"""Causal labelling: read the dialogue once, ask after each utterance as it arrives.

The physical floor of labelling cost is reading every utterance once. Here
the instructions are read once, then each turn is appended to the KV state
and followed by a three-token question ("Class:"); the question's KV state is
dropped before the next turn, so a label costs its own turn plus the question.
The teacher sees only the past, as a live labeller would. It needs the
embedded llama.cpp teacher (a server cannot keep and roll back KV state), in
plain completion form (no chat template: its per-message wrapper would cost
more tokens than the short question).

Through a `CachedTeacher`, each utterance's answer is cached under the full text
it was answered from (`CachedTeacher.stream_option_logprobs`), so an interrupted
run repeats no finished dialogue.
"""

from __future__ import annotations

import json
from typing import Any

from dialpref.data.schema import Dialogue
from dialpref.label.bank import environment
from dialpref.label.scoring import ScoringConfig, finish_row, new_row
from dialpref.label.tasks import TaskSpec
from dialpref.teachers.base import Teacher, TeacherError
from dialpref.teachers.calls import normalise

PROMPT_ID = "causal@v1"


def causal_pieces(task: TaskSpec, dialogue: Dialogue, instructions: str | None = None) -> tuple[str, list[str], str]:
    """The head (instructions), one text segment per turn, and the question asked after each."""
    module = environment().get_template("causal.jinja").module
    head = str(module.head(task, instructions))
    segments = [str(module.turn(i + 1, turn)) for i, turn in enumerate(dialogue.turns)]
    return head, segments, str(module.ask(task))


def label_causal(teacher: Teacher, task: TaskSpec, dialogue: Dialogue,
                 instructions: str | None = None) -> list[dict[str, Any]]:
    """Rows like the expected estimator's, from one causal pass over the dialogue."""
    head, segments, ask = causal_pieces(task, dialogue, instructions)
    if not hasattr(teacher, "stream_option_logprobs"):
        raise TeacherError("causal mode needs the embedded llama.cpp teacher (it keeps and rolls back the KV "
                           f"state between utterances); {teacher.backend} cannot")
    answers = teacher.stream_option_logprobs(head, segments, ask, task.class_names)  # cached where it is
    targets = [i for i, t in enumerate(dialogue.turns) if task.labelled(t)]
    config = ScoringConfig(estimator="expected")
    rows = []
    for i in targets:
        scores = answers[i]
        row = new_row(task, dialogue, i, teacher, config)
        row["prompt_ids"] = [PROMPT_ID]
        row["per_prompt"] = {PROMPT_ID: normalise(scores.logprobs)}
        row["raw_outputs"] = [{"prompt_id": PROMPT_ID, "class": None, "output": json.dumps(scores.logprobs)}]
        row["prompt_tokens"] = scores.prompt_tokens
        if scores.turns_dropped or scores.utterance_cut:
            row["truncation"] = {"turns_dropped": scores.turns_dropped, "utterance_cut": scores.utterance_cut}
        rows.append(finish_row(row, task))
    return rows
