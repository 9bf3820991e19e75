"""Classification figures every report and benchmark states the same way: accuracy, macro-F1, the
majority class, and agreement with its 95 % interval."""

from __future__ import annotations

from collections import Counter
from typing import Sequence


def classification(gold: Sequence, predicted: Sequence, classes: Sequence, digits: int | None = 4) -> dict[str, float]:
    """Accuracy and macro-F1 over `classes` (a class never predicted nor seen scores 0, not skipped);
    labels may be names or indices. `digits=None` keeps full precision (for further arithmetic)."""
    from sklearn.metrics import accuracy_score, f1_score

    figures = {"accuracy": float(accuracy_score(gold, predicted)),
               "macro_f1": float(f1_score(gold, predicted, labels=list(classes), average="macro", zero_division=0))}
    return figures if digits is None else {k: round(v, digits) for k, v in figures.items()}


def majority_class(gold: Sequence[str], classes: Sequence[str]) -> dict:
    """The figures of always answering the most common gold class."""
    label = Counter(gold).most_common(1)[0][0]
    return {"class": label, **classification(gold, [label] * len(gold), classes)}


def agreement(a: Sequence[str], b: Sequence[str], confidence: float = 0.95) -> dict[str, float]:
    """Share of items where a and b agree, with its Wilson score interval."""
    from scipy.stats import norm

    n = len(a)
    if n == 0:
        return {"agreement": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    p = sum(x == y for x, y in zip(a, b)) / n
    z = float(norm.ppf(0.5 + confidence / 2))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return {"agreement": round(p, 4), "low": round(centre - half, 4), "high": round(centre + half, 4), "n": n}
