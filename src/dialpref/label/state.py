"""Teacher labels for slot tasks: per user turn, S[slot, value], the probability the turn sets slot to value.

Two estimators, as for the other kinds:
- `expected`: one pass over the prompt, then each slot's answer `{"<slot>": "<value>"` scored whole for
  every value (`continuation_logprobs`: multi-token values are not cut to a first token), normalised per
  slot. Needs the embedded teacher; consecutive turns reuse the dialogue prefix.
- `votes`: N sampled answers, each one grammar-constrained JSON object whose values are the slot's
  enums (llama.cpp grammar / `response_format`), validated and retried with the error
  (`teachers.calls.structured`); S is the share of votes per slot. Any backend.

Rows have the shape of the other kinds' rows (dialpref.rows), with `scores` / `predicted` / `gold` per
slot: `gold` is the turn's state *change* (from the gold states, `label.slots.state_changes`) and
`gold_state` the state after it.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from dialpref.data.schema import Dialogue
from dialpref.label.bank import environment
from dialpref.label.scoring import ScoringConfig, new_row
from dialpref.label.slots import NONE, flat_state, state_changes
from dialpref.label.tasks import TaskSpec
from dialpref.teachers.base import Teacher, TeacherError
from dialpref.teachers.calls import structured

PROMPT_ID = "state@v1"


def state_messages(task: TaskSpec, dialogue: Dialogue, index: int) -> list[dict[str, str]]:
    """The prompt for turn `index`: the slots and their values, then the conversation up to that turn."""
    module = environment().get_template("state.jinja").module
    return [{"role": "system", "content": str(module.system(task))},
            {"role": "user", "content": str(module.user(dialogue, index))}]


def answer_model(task: TaskSpec) -> type[BaseModel]:
    """A pydantic model whose JSON schema is the answer's grammar: one key per slot, its values as an enum."""
    fields: dict[str, Any] = {f"slot_{i}": (Literal[tuple(s.values)], Field(alias=s.name))  # type: ignore[misc]
                              for i, s in enumerate(task.slots)}
    return create_model("StateChange", __config__=ConfigDict(extra="forbid", populate_by_name=True), **fields)


def gold_rows_fields(task: TaskSpec, dialogue: Dialogue, targets: list[int]) -> dict[int, dict[str, Any]]:
    """Per labelled turn, its gold change and gold state, where the dialogue has gold states."""
    states = [dialogue.turns[i].labels.get(task.gold_key) if task.gold_key else None for i in targets]
    if any(s is None for s in states):
        return {i: {"gold": None, "gold_state": None} for i in targets}
    changes = state_changes(states, task.slots)
    return {i: {"gold": change, "gold_state": {s: flat_state(state).get(s, NONE) for s in task.slot_names}}
            for i, change, state in zip(targets, changes, states)}


def label_state_dialogue(teacher: Teacher, task: TaskSpec, dialogue: Dialogue,
                         config: ScoringConfig = ScoringConfig()) -> list[dict[str, Any]]:
    """One row per labelled turn of `dialogue` with S[slot, value]; a failed turn keeps its reason."""
    targets = [i for i, t in enumerate(dialogue.turns) if task.labelled(t)]
    gold = gold_rows_fields(task, dialogue, targets)
    rows = []
    for i in targets:
        row = {**new_row(task, dialogue, i, teacher, config), **gold[i], "prompt_ids": [PROMPT_ID]}
        messages = state_messages(task, dialogue, i)
        try:
            if config.estimator == "expected":
                _expected(teacher, task, messages, row)
            else:
                _votes(teacher, task, messages, row, config)
        except TeacherError as err:
            row["errors"].append(f"{PROMPT_ID}: {err}")
        rows.append(row)
    return rows


def answer_lead(slot: str) -> str:
    """How the JSON answer for `slot` begins; the value follows it and a closing quote ends it."""
    return "{" + json.dumps(slot) + ': "'


def _expected(teacher: Teacher, task: TaskSpec, messages: list[dict[str, str]], row: dict) -> None:
    score = getattr(teacher, "continuation_logprobs", None)
    if score is None:
        raise TeacherError(f"the expected estimator of a slot task scores whole values, which needs the embedded "
                           f"llama.cpp teacher; {teacher.backend} cannot: use --estimator votes")
    groups = [(answer_lead(s.name), [v + '"' for v in s.values]) for s in task.slots]
    result = score(messages, groups)
    scores = {}
    for slot, logprobs in zip(task.slots, result.logprobs):
        top = max(logprobs.values())
        weights = {v: math.exp(logprobs[v + "\""] - top) for v in slot.values}
        total = sum(weights.values())
        scores[slot.name] = {v: w / total for v, w in weights.items()}
    row["raw_outputs"] = [{"prompt_id": PROMPT_ID, "class": None, "output": json.dumps(result.logprobs)}]
    row["prompt_tokens"] = result.prompt_tokens
    _finish(row, scores)


def _votes(teacher: Teacher, task: TaskSpec, messages: list[dict[str, str]], row: dict,
           config: ScoringConfig) -> None:
    model = answer_model(task)
    counts = {s.name: Counter() for s in task.slots}
    for k in range(config.votes):
        result = structured(teacher, messages, model, temperature=config.temperature, seed=config.seed + k,
                            sample_index=k, max_tokens=32 + 16 * len(task.slots))
        row["raw_outputs"].extend({"prompt_id": PROMPT_ID, "class": None, "output": o} for o in result.raw_outputs)
        row["prompt_tokens"] += result.prompt_tokens
        if not result.ok:
            row["errors"].append(f"{PROMPT_ID} vote {k}: " + "; ".join(result.errors[-1:]))
            continue
        answer = result.value.model_dump(by_alias=True)
        row["votes"].append({"prompt_id": PROMPT_ID, "answer": answer})
        for slot in task.slots:
            counts[slot.name][answer[slot.name]] += 1
    valid = len(row["votes"])
    if not valid:
        row["errors"].append("no valid vote")
        return
    _finish(row, {s.name: {v: counts[s.name][v] / valid for v in s.values} for s in task.slots})


def _finish(row: dict, scores: dict[str, dict[str, float]]) -> None:
    row["scores"] = scores
    row["predicted"] = {slot: max(values, key=values.get) for slot, values in scores.items()}


def gold_by_turn(task: TaskSpec, dialogues) -> dict[tuple[str, int], Any]:
    """Every labelled turn's gold, by (dialogue id, turn index): the class name, or for a slots task the
    turn's state change; turns without gold are left out."""
    out: dict[tuple[str, int], Any] = {}
    for dialogue in dialogues:
        targets = [i for i, t in enumerate(dialogue.turns) if task.labelled(t)]
        if task.kind == "slots":
            found = gold_rows_fields(task, dialogue, targets)
            out.update({(dialogue.id, i): found[i]["gold"] for i in targets if found[i]["gold"] is not None})
        else:
            out.update({(dialogue.id, i): g for i in targets
                        if (g := task.gold(dialogue.turns[i].labels)) is not None})
    return out
