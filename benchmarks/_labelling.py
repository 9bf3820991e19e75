"""Shared by the labelling benchmarks: the evaluation sets, running a bank over them, and scoring rows."""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from _common import SHARED_DATA
from dialpref.data import read_dialogues
from dialpref.label.bank import Bank, examples_from
from dialpref.label.calibration import quality
from dialpref.label.prior import apply_priors, correct, estimate_priors
from dialpref.label.scoring import ScoringConfig, score_dialogue, votes_to_scores
from dialpref.label.tasks import BUILTIN, TaskSpec
from dialpref.metrics import majority_class

# name -> (path, task, split for evaluation, split for few-shot examples)
DATASETS = {
    "dailydialog_acts": ("dailydialog/data.zip", "dialogue_act", {"dev": "validation", "test": "test"}),
    "meld_sentiment": (None, "sentiment", {"dev": "meld/dev_sent_emo.csv", "test": "meld/test_sent_emo.csv"}),
}


def load_set(name: str, part: str, limit: int):
    """(task, dialogues of the dev or test part, few-shot examples from the training part)."""
    path, task_name, parts = DATASETS[name]
    task = BUILTIN[task_name]
    if path is None:  # MELD: one CSV per split
        dialogues = list(read_dialogues(SHARED_DATA / parts[part], limit=limit))
        train = read_dialogues(SHARED_DATA / "meld/train_sent_emo.csv", limit=200)
    else:
        dialogues = list(read_dialogues(SHARED_DATA / path, split=parts[part], limit=limit))
        train = read_dialogues(SHARED_DATA / path, split="train", limit=200)
    return task, dialogues, examples_from(train, task)


def majority(rows: Sequence[dict], task: TaskSpec) -> dict[str, Any]:
    gold = [r["gold"] for r in rows if r["gold"] in task.classes]
    return {**majority_class(gold, task.class_names), "n": len(gold)}


def run_bank(teacher, task: TaskSpec, bank: Bank, dialogues, config: ScoringConfig = ScoringConfig()):
    """Rows, seconds, and prompt tokens evaluated (after KV reuse) for a bank over the dialogues."""
    before, started = teacher.evaluated_tokens, time.perf_counter()
    rows = [r for d in dialogues for r in score_dialogue(teacher, task, bank, d, config)]
    return rows, time.perf_counter() - started, teacher.evaluated_tokens - before


def with_prior(rows, kind: str, task: TaskSpec, teacher=None, bank=None, dialogues=()):
    if kind == "none":
        return rows
    priors = estimate_priors(kind, rows, task, teacher, bank, dialogues)
    return apply_priors(rows, priors, kind, task)


def ensemble(rows: Sequence[dict], prompt_ids: Sequence[str], task: TaskSpec) -> np.ndarray:
    """S as the mean of the chosen prompts' per-prompt distributions (rows in order)."""
    classes = task.class_names
    out = []
    for r in rows:
        dists = [r["per_prompt"][p] for p in prompt_ids if r["per_prompt"].get(p)]
        out.append([sum(d[c] for d in dists) / len(dists) if dists else 1 / len(classes) for c in classes])
    return np.array(out)


def evaluate(probs: np.ndarray, rows: Sequence[dict], task: TaskSpec, buckets: int = 10) -> dict[str, float]:
    keep = [i for i, r in enumerate(rows) if r["gold"] in task.classes]
    gold = np.array([task.class_names.index(rows[i]["gold"]) for i in keep])
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in quality(probs[keep], gold, buckets).items()}


def vote_shares_at(rows: Sequence[dict], n: int, task: TaskSpec, prior: str = "none",
                   divisors: dict[str, dict[str, float]] | None = None) -> np.ndarray:
    """S from each row's first n votes: per-prompt shares (prior-corrected if asked), averaged over prompts.

    The unlabelled prior is the votes' own mean; other priors pass the expected rows' `divisors`."""
    classes = task.class_names
    per_row = []
    for r in rows:
        shares: dict[str, list] = {}
        for vote in r["votes"][:n]:
            shares.setdefault(vote["prompt_id"], []).append(vote)
        dists = {}
        for pid, votes in shares.items():
            share, valid = votes_to_scores(votes, classes)
            if valid:
                dists[pid] = share
        per_row.append(dists)
    if prior == "unlabelled":
        pids = {p for d in per_row for p in d}
        means = {p: {c: float(np.mean([d[p][c] for d in per_row if p in d])) for c in classes} for p in pids}
        per_row = [{p: correct(dist, means[p]) for p, dist in d.items()} for d in per_row]
    elif prior != "none" and divisors:
        per_row = [{p: correct(dist, divisors[p]) if p in divisors else dist for p, dist in d.items()}
                   for d in per_row]
    out = []
    for d in per_row:
        dists = list(d.values())
        out.append([sum(x[c] for x in dists) / len(dists) if dists else 1 / len(classes) for c in classes])
    return np.array(out)


__all__ = ["DATASETS", "load_set", "majority", "run_bank", "with_prior", "ensemble", "evaluate",
           "vote_shares_at"]
