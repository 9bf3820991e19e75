"""Soft scores S[utterance, class] from a prompt bank, by two estimators.

- `votes` (the paper): N sampled answers spread round-robin over the bank's
  prompts (answer k goes to prompt k mod P, sample k div P); S is the share of
  votes per class. `sampler="generate"` asks the teacher for each answer (one
  call per vote, each cached); `sampler="distribution"` draws the answers from
  the constrained answer distribution of one forward pass per prompt, which is
  what grammar-constrained sampling of a one-token answer draws, without running
  the model again (the labelling benchmark checks the two agree).
- `expected`: the option probabilities of one forward pass per prompt, averaged
  over the prompts; the limit of the votes as N grows, at the cost of one sample.

Calls are made prompt by prompt within a dialogue, so consecutive prompts share
the instructions and the dialogue, and the KV state of that prefix is reused.
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

from dialpref.data.schema import Dialogue
from dialpref.label.bank import (Bank, PromptSpec, Query, dialogue_list_schema, dialogue_queries,
                                 utterance_queries)
from dialpref.label.tasks import TaskSpec
from dialpref.teachers.base import ChatRequest, Completion, Teacher, TeacherError, stable_hash
from dialpref.teachers.calls import extract_json, mark_invalid, normalise

ESTIMATORS = ("expected", "votes")
SAMPLERS = ("generate", "distribution")


@dataclass(frozen=True)
class ScoringConfig:
    """How one utterance's scores are drawn from a teacher: `expected` reads each option's probability in one
    call; `votes` asks N times (`generate`: real sampled answers; `distribution`: drawn from the option
    probabilities with the same temperature / top-k / top-p: far cheaper; generate_fidelity.py measures the
    gap)."""

    estimator: str = "expected"
    votes: int = 10  # N, answers per utterance over the whole bank (votes estimator)
    sampler: str = "generate"
    temperature: float = 1.0
    top_k: int = 40
    top_p: float = 0.95
    seed: int = 0
    list_max_tokens: int = 64  # dialogue_list answers

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, not {self.estimator!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, not {self.sampler!r}")
        if self.votes < 1:
            raise ValueError("votes must be at least 1")


# --- reading one answer ---------------------------------------------------------------------
def match_answer(text: str, options: Sequence[str]) -> str | None:
    """The option a generated answer names: exact, then case-insensitive, then its first word."""
    answer = text.strip().strip('"\'.`*').strip()
    if answer in options:
        return answer
    lowered = {o.lower(): o for o in options}
    if answer.lower() in lowered:
        return lowered[answer.lower()]
    first = answer.split()[0].strip('",.:;)(').lower() if answer.split() else ""
    return lowered.get(first)


def query_distribution(teacher: Teacher, query: Query) -> tuple[dict[str, float], int, str]:
    """P(option) for one query from one forward pass, with its prompt tokens and raw log-probs."""
    scores = teacher.option_logprobs(query.messages, query.options)
    return normalise(scores.logprobs), scores.prompt_tokens, json.dumps(scores.logprobs)


def class_distribution(queries: Sequence[Query], option_probs: Sequence[dict[str, float]],
                       task: TaskSpec) -> dict[str, float]:
    """One prompt's distribution over classes: mapped options (choice) or normalised P(yes) (yes_no)."""
    if queries[0].form == "choice":
        dist = {c: 0.0 for c in task.classes}
        for option, p in option_probs[0].items():
            dist[queries[0].to_class[option]] += p
        return dist
    yes = {q.target_class: probs["yes"] for q, probs in zip(queries, option_probs)}
    return normalise({c: math.log(max(p, 1e-12)) for c, p in yes.items()})


def votes_to_scores(votes: Iterable[dict[str, Any]], classes: Sequence[str]) -> tuple[dict[str, float], int]:
    """Share of votes per class (a vote naming several classes splits its weight); abstentions skipped."""
    totals = {c: 0.0 for c in classes}
    valid = 0
    for vote in votes:
        chosen = vote.get("classes")
        if not chosen:
            continue
        valid += 1
        for c in chosen:
            totals[c] += 1.0 / len(chosen)
    if not valid:
        return {c: 1.0 / len(classes) for c in classes}, 0
    return {c: v / valid for c, v in totals.items()}, valid


def draw(probs: dict[str, float], rng: random.Random, temperature: float, top_k: int, top_p: float) -> str:
    """One answer from an option distribution, with the sampler's temperature, top-k and top-p."""
    items = sorted(probs.items(), key=lambda kv: -kv[1])
    if temperature <= 0:
        return items[0][0]
    weights = [(o, math.exp(math.log(max(p, 1e-300)) / temperature)) for o, p in items]
    if top_k:
        weights = weights[:top_k]
    total = sum(w for _, w in weights)
    kept, mass = [], 0.0
    for option, w in weights:
        kept.append((option, w))
        mass += w / total
        if mass >= top_p:
            break
    return rng.choices([o for o, _ in kept], weights=[w for _, w in kept])[0]


def _draw_rng(dialogue_id: str, index: int, prompt_id: str, sample: int, seed: int) -> random.Random:
    """The generator of one drawn vote: the same vote on every run and in every process."""
    return random.Random(stable_hash([dialogue_id, index, prompt_id, sample, seed]))


def drawn_votes(row: dict, n: int, config: ScoringConfig = ScoringConfig()) -> list[dict[str, Any]]:
    """n votes drawn from a row's stored per-prompt distributions (prompts taken in turn), as the
    distribution sampler would have drawn them: turns an `expected` (or causal) row into votes."""
    pids = list(row["per_prompt"])
    votes = []
    for k in range(n):
        pid, sample = pids[k % len(pids)], k // len(pids)
        rng = _draw_rng(row["dialogue_id"], row["turn_index"], pid, sample, config.seed)
        votes.append({"prompt_id": pid, "sample": sample,
                      "classes": [draw(row["per_prompt"][pid], rng, config.temperature, config.top_k, config.top_p)]})
    return votes


# --- one dialogue ------------------------------------------------------------------------------
def new_row(task: TaskSpec, dialogue: Dialogue, index: int, teacher: Teacher, config: ScoringConfig) -> dict:
    turn = dialogue.turns[index]
    return {"dialogue_id": dialogue.id, "turn_index": index, "speaker": turn.speaker, "role": turn.role,
            "text": turn.text, "gold": task.gold(turn.labels), "task": task.name, "teacher": teacher.model,
            "estimator": config.estimator, "scores": None, "predicted": None, "per_prompt": {}, "votes": [],
            "prompt_ids": [], "raw_outputs": [], "errors": [], "prompt_tokens": 0, "prior": None,
            "truncation": None}


def score_dialogue(teacher: Teacher, task: TaskSpec, bank: Bank, dialogue: Dialogue,
                   config: ScoringConfig = ScoringConfig()) -> list[dict[str, Any]]:
    """One row per labelled utterance of `dialogue`: S per class, per-prompt scores, votes, provenance."""
    targets = [i for i, t in enumerate(dialogue.turns) if task.labelled(t)]
    rows = {i: new_row(task, dialogue, i, teacher, config) for i in targets}
    prompts = bank.usable()
    if not prompts:
        raise ValueError("the bank has no usable prompt (few-shot prompts need gold examples)")
    if config.estimator == "expected":
        for prompt in prompts:
            if not prompt.per_utterance:
                continue  # a listed answer has no single-pass expected value
            shots = bank.shots_for(prompt, task)
            for i in targets:
                _expected_one(teacher, task, prompt, dialogue, i, shots, rows[i])
    else:
        _votes(teacher, task, bank, prompts, dialogue, targets, rows, config)
    return [finish_row(rows[i], task) for i in targets]


def _expected_one(teacher: Teacher, task: TaskSpec, prompt: PromptSpec, dialogue: Dialogue, index: int,
                  shots, row: dict) -> dict[str, float] | None:
    row["prompt_ids"].append(prompt.id)
    probs = []
    try:
        queries = utterance_queries(prompt, task, dialogue, index, shots, fits=_fits(teacher))
        _note_truncation(row, queries)
        for query in queries:
            dist, tokens, raw = query_distribution(teacher, query)
            row["prompt_tokens"] += tokens
            row["raw_outputs"].append({"prompt_id": prompt.id, "class": query.target_class, "output": raw})
            probs.append(dist)
    except TeacherError as err:
        row["errors"].append(f"{prompt.id}: {failed(err)}")
        row["per_prompt"][prompt.id] = None
        return None
    row["per_prompt"][prompt.id] = class_distribution(queries, probs, task)
    return row["per_prompt"][prompt.id]


def failed(err: Exception) -> str:
    """A row's error for a failed teacher call, its kind in brackets (what run summaries count by)."""
    return f"teacher failed [{getattr(err, 'kind', type(err).__name__)}]: {err}"


_KIND = re.compile(r"teacher failed \[([^\]]+)\]|(unparseable answer)|(alone does not fit)|(no valid vote)")


def error_kind(error: str) -> str:
    """The kind of a row's error: 'HTTP 500', 'malformed reply', 'unparseable answer'..."""
    found = _KIND.search(error)
    return next((g for g in found.groups() if g), "other") if found else "other"


def _fits(teacher: Teacher):
    """The teacher's context rule, where it has one."""
    return getattr(teacher, "fits", None)


def _note_truncation(row: dict, queries: Sequence[Query]) -> None:
    dropped = max(q.turns_dropped for q in queries)
    if dropped:
        row["truncation"] = {"turns_dropped": max(dropped, (row["truncation"] or {}).get("turns_dropped", 0)),
                             "utterance_cut": False}


def finish_row(row: dict, task: TaskSpec) -> dict:
    """S from the per-prompt scores (expected) or the votes, and the predicted class."""
    classes = task.class_names
    if row["estimator"] == "votes":
        scores, valid = votes_to_scores(row["votes"], classes)
        if not valid:
            row["errors"].append("no valid vote")
            row["scores"], row["predicted"] = None, None
            return row
    else:
        dists = [d for d in row["per_prompt"].values() if d]
        if not dists:
            row["scores"], row["predicted"] = None, None
            return row
        scores = {c: sum(d[c] for d in dists) / len(dists) for c in classes}
    row["scores"] = scores
    row["predicted"] = max(scores, key=scores.get)
    return row


def _schedule(prompts: Sequence[PromptSpec], n: int) -> list[tuple[int, PromptSpec, int]]:
    """Vote k -> (k, prompt k mod P, sample k div P)."""
    return [(k, prompts[k % len(prompts)], k // len(prompts)) for k in range(n)]


def _votes(teacher: Teacher, task: TaskSpec, bank: Bank, prompts: Sequence[PromptSpec], dialogue: Dialogue,
           targets: list[int], rows: dict[int, dict], config: ScoringConfig) -> None:
    schedule = _schedule(prompts, config.votes)
    by_prompt: dict[str, list[tuple[int, int]]] = {}
    for k, prompt, sample in schedule:
        by_prompt.setdefault(prompt.id, []).append((k, sample))
    collected: dict[int, dict[int, dict]] = {i: {} for i in targets}  # utterance -> k -> vote
    for prompt in prompts:
        samples = by_prompt.get(prompt.id, [])
        if not samples:
            continue
        for row in rows.values():
            row["prompt_ids"].append(prompt.id)
        if prompt.form == "dialogue_list":
            _list_votes(teacher, task, prompt, dialogue, targets, samples, rows, collected, config)
            continue
        shots = bank.shots_for(prompt, task)
        for i in targets:
            try:
                queries = utterance_queries(prompt, task, dialogue, i, shots, fits=_fits(teacher))
            except TeacherError as err:
                rows[i]["errors"].append(f"{prompt.id}: {err}")
                continue
            _note_truncation(rows[i], queries)
            answers = (_sampled_answers(teacher, queries, samples, rows[i], config)
                       if config.sampler == "generate" else
                       _drawn_answers(teacher, queries, samples, rows[i], dialogue, i, config))
            for k, sample, vote_classes, raw in answers:
                collected[i][k] = {"prompt_id": prompt.id, "sample": sample, "classes": vote_classes, "raw": raw}
    for i in targets:
        rows[i]["votes"] = [collected[i][k] for k in sorted(collected[i])]
        shares: dict[str, list[dict]] = {}
        for vote in rows[i]["votes"]:
            shares.setdefault(vote["prompt_id"], []).append(vote)
        rows[i]["per_prompt"] = {pid: votes_to_scores(v, task.class_names)[0] for pid, v in shares.items()}


def _vote_from(queries: Sequence[Query], answers: Sequence[str | None]) -> list[str] | None:
    if queries[0].form == "choice":
        return [queries[0].to_class[answers[0]]] if answers[0] is not None else None
    if any(a is None for a in answers):
        return None
    return [q.target_class for q, a in zip(queries, answers) if a == "yes"]


def _sampled_answers(teacher: Teacher, queries: Sequence[Query], samples: Sequence[tuple[int, int]], row: dict,
                     config: ScoringConfig) -> Iterator[tuple[int, int, list[str] | None, str]]:
    max_tokens = 2 + max(len(o) for q in queries for o in q.options) // 2
    requests = [ChatRequest.make(q.messages, choices=q.options, temperature=config.temperature, top_k=config.top_k,
                                 top_p=config.top_p, max_tokens=max_tokens, seed=config.seed + sample,
                                 sample_index=sample)
                for _, sample in samples for q in queries]
    results = teacher.complete_many(requests)
    for position, (k, sample) in enumerate(samples):
        chunk = results[position * len(queries):(position + 1) * len(queries)]
        answers, raws = [], []
        for query, result, request in zip(queries, chunk, requests[position * len(queries):]):
            if isinstance(result, Exception):
                row["errors"].append(f"{query.prompt_id} sample {sample}: {failed(result)}")
                answers.append(None)
                raws.append("")
                continue
            row["prompt_tokens"] += result.prompt_tokens
            answer = match_answer(result.text, query.options)
            if answer is None:
                row["errors"].append(f"{query.prompt_id} sample {sample}: unparseable answer {result.text[:80]!r}")
                mark_invalid(teacher, request, "not one of the options")
            answers.append(answer)
            raws.append(result.text)
        yield k, sample, _vote_from(queries, answers), json.dumps(raws) if len(raws) > 1 else raws[0]


def _drawn_answers(teacher: Teacher, queries: Sequence[Query], samples: Sequence[tuple[int, int]], row: dict,
                   dialogue: Dialogue, index: int, config: ScoringConfig):
    try:
        dists = []
        for query in queries:
            dist, tokens, _ = query_distribution(teacher, query)
            row["prompt_tokens"] += tokens
            dists.append(dist)
    except TeacherError as err:
        row["errors"].append(f"{queries[0].prompt_id}: {failed(err)}")
        for k, sample in samples:
            yield k, sample, None, ""
        return
    for k, sample in samples:
        rng = _draw_rng(dialogue.id, index, queries[0].prompt_id, sample, config.seed)
        answers = [draw(d, rng, config.temperature, config.top_k, config.top_p) for d in dists]
        yield k, sample, _vote_from(queries, answers), json.dumps(answers) if len(answers) > 1 else answers[0]


def _list_votes(teacher: Teacher, task: TaskSpec, prompt: PromptSpec, dialogue: Dialogue, targets: list[int],
                samples: Sequence[tuple[int, int]], rows: dict[int, dict], collected: dict[int, dict[int, dict]],
                config: ScoringConfig) -> None:
    queries = dialogue_queries(prompt, task, dialogue)
    schema = dialogue_list_schema(len(dialogue.turns))
    requests = [ChatRequest.make(q.messages, json_schema=schema, temperature=config.temperature, top_k=config.top_k,
                                 top_p=config.top_p, max_tokens=config.list_max_tokens,
                                 seed=config.seed + sample, sample_index=sample)
                for _, sample in samples for q in queries]
    results = teacher.complete_many(requests)
    for position, (k, sample) in enumerate(samples):
        chunk = results[position * len(queries):(position + 1) * len(queries)]
        listed: dict[str, set[int] | None] = {}
        raws = []
        for query, result, request in zip(queries, chunk, requests[position * len(queries):]):
            listed[query.target_class] = _parse_list(result, prompt, sample, rows, targets)
            if listed[query.target_class] is None and isinstance(result, Completion):
                mark_invalid(teacher, request, "not a list of utterance numbers")
            raws.append(result.text if isinstance(result, Completion) else f"error: {result}")
        first_row = rows[targets[0]] if targets else None
        if first_row is not None and isinstance(chunk[0], Completion):
            first_row["prompt_tokens"] += sum(r.prompt_tokens for r in chunk if isinstance(r, Completion))
        for i in targets:
            if any(v is None for v in listed.values()):
                vote = None
            else:
                vote = [c for c, numbers in listed.items() if (i + 1) in numbers]
            collected[i][k] = {"prompt_id": prompt.id, "sample": sample, "classes": vote, "raw": json.dumps(raws)}


def _parse_list(result, prompt: PromptSpec, sample: int, rows: dict[int, dict], targets: list[int]) -> set[int] | None:
    if isinstance(result, Exception):
        problem = failed(result)
    else:
        try:
            numbers = json.loads(extract_json(result.text))["utterances"]
            if isinstance(numbers, list) and all(isinstance(n, int) for n in numbers):
                return set(numbers)
            problem = f"'utterances' is not a list of integers: {result.text[:80]!r}"
        except (ValueError, KeyError, TypeError):
            problem = f"unparseable answer {result.text[:80]!r}"
    for i in targets:
        rows[i]["errors"].append(f"{prompt.id} sample {sample}: {problem}")
    return None


def scores_at(row: dict, n: int, classes: Sequence[str]) -> dict[str, float] | None:
    """S of a votes row from its first n votes (the ensemble of size n)."""
    scores, valid = votes_to_scores(row["votes"][:n], classes)
    return scores if valid else None


def shares_at(row: dict, n: int, classes: Sequence[str]) -> dict[str, dict[str, float]]:
    """Prompt id -> share of votes per class among a votes row's first n votes (prompts with a valid vote)."""
    by_prompt: dict[str, list] = {}
    for vote in row["votes"][:n]:
        by_prompt.setdefault(vote["prompt_id"], []).append(vote)
    out = {}
    for pid, votes in by_prompt.items():
        share, valid = votes_to_scores(votes, classes)
        if valid:
            out[pid] = share
    return out
