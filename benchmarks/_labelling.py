"""Shared by the labelling benchmarks: the evaluation sets, running a bank over them, and scoring rows."""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from _common import SHARED_DATA
from dialpref.data import read_dialogues
from dialpref.label.bank import Bank, examples_from
from dialpref.evaluate.calibration_error import quality
from dialpref.label.prior import apply_priors, corrected_scores_at, estimate_priors
from dialpref.label.scoring import ScoringConfig, score_dialogue
from dialpref.label.tasks import BUILTIN, TaskSpec
from dialpref.evaluate.classification import majority_class

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
    """S from each row's first n votes as a matrix (`dialpref.label.prior.corrected_scores_at`)."""
    return np.array([[s[c] for c in task.class_names] for s in corrected_scores_at(rows, n, task, prior, divisors)])


__all__ = ["DATASETS", "load_set", "majority", "run_bank", "with_prior", "ensemble", "evaluate",
           "vote_shares_at"]
