"""How far soft scores S are from being probabilities.

ECE uses M equal-width buckets over the top-class confidence (max_c S_c):
sum over buckets of |bucket| / n * |accuracy - mean confidence|. The paper
uses M = 5; the default here is 10.
"""

from __future__ import annotations

import numpy as np

from dialpref.evaluate.classification import classification


def _buckets(probs: np.ndarray, gold: np.ndarray, buckets: int):
    """Top-class confidence, correctness, bucket edges and each row's bucket."""
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == gold).astype(np.float64)
    edges = np.linspace(0.0, 1.0, buckets + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, buckets - 1)
    return confidence, correct, edges, which


def ece(probs: np.ndarray, gold: np.ndarray, buckets: int = 10) -> float:
    """Expected calibration error of the top-class confidence, M equal-width buckets."""
    if len(gold) == 0:
        return float("nan")
    confidence, correct, _, _ = _buckets(probs, gold, buckets)
    return ece_of(confidence, correct, buckets)


def ece_of(confidence: np.ndarray, correct: np.ndarray, buckets: int = 10) -> float:
    """ECE from each prediction's confidence and whether it was right (predictions over different class
    sets pooled, e.g. every slot of a state tracker)."""
    if len(confidence) == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, buckets + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, buckets - 1)
    total = 0.0
    for b in range(buckets):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)


def reliability(probs: np.ndarray, gold: np.ndarray, buckets: int = 10) -> list[dict[str, float]]:
    """Per bucket: range, count, mean confidence, accuracy (the reliability diagram's data)."""
    confidence, correct, edges, which = _buckets(probs, gold, buckets)
    out = []
    for b in range(buckets):
        mask = which == b
        out.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": int(mask.sum()),
                    "confidence": float(confidence[mask].mean()) if mask.any() else None,
                    "accuracy": float(correct[mask].mean()) if mask.any() else None})
    return out


def quality(probs: np.ndarray, gold: np.ndarray, buckets: int = 10) -> dict[str, float]:
    """Accuracy, macro-F1 (`classification`, full precision) and ECE of one set of scores."""
    if len(gold) == 0:
        return {"n": 0, "accuracy": float("nan"), "macro_f1": float("nan"), "ece": float("nan")}
    figures = classification(gold, probs.argmax(axis=1), range(probs.shape[1]), digits=None)
    return {"n": int(len(gold)), **figures, "ece": ece(probs, gold, buckets)}
