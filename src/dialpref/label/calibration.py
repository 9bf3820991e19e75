"""Post-hoc fixes for soft scores S that are not yet probabilities, and their diagrams.

The measurement itself (ECE, reliability buckets) lives in `dialpref.evaluate.calibration_error`.
A `Calibrator` is fit on gold dev rows: `temperature` (one T on log S, the scores' order kept) or
`isotonic` (one monotone map per class, one-vs-rest, then renormalised).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dialpref.evaluate.calibration_error import ece, reliability


def arrays(rows: Sequence[dict[str, Any]], classes: Sequence[str], key: str = "scores") -> tuple[np.ndarray, np.ndarray]:
    """(S matrix, gold index) over the rows that have both scores and a gold label."""
    kept = [r for r in rows if r.get(key) and r.get("gold") in classes]
    probs = np.array([[r[key][c] for c in classes] for r in kept], dtype=np.float64).reshape(-1, len(classes))
    gold = np.array([list(classes).index(r["gold"]) for r in kept], dtype=np.int64)
    return probs, gold


# --- post-hoc calibration ----------------------------------------------------------------------
METHODS = ("temperature", "isotonic")


class Calibrator:
    """A post-hoc map from scores to probabilities, in scikit-learn's shape: `__init__` stores the settings,
    `fit` learns on gold dev scores and returns self, learned state ends in `_`, `transform` applies it."""

    def __init__(self, method: str = "temperature", classes: Sequence[str] = ()) -> None:
        self.method = method
        self.classes = list(classes)

    def fit(self, probs: np.ndarray, gold: np.ndarray) -> "Calibrator":
        """T minimising the negative log-likelihood, or one isotonic map per class (one-vs-rest)."""
        if self.method not in METHODS:
            raise ValueError(f"unknown calibration method {self.method!r}; one of {', '.join(METHODS)}")
        if len(gold) < 2:
            raise ValueError("post-hoc calibration needs at least two gold-labelled rows")
        if self.method == "temperature":
            self.temperature_ = _fit_temperature(probs, gold)
        else:
            from sklearn.isotonic import IsotonicRegression

            self.isotonic_ = [IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
                              .fit(probs[:, k], (gold == k).astype(float)) for k in range(probs.shape[1])]
        return self

    def transform(self, probs: np.ndarray) -> np.ndarray:
        if self.method == "temperature":
            logits = np.log(np.clip(probs, 1e-12, 1.0)) / self.temperature_
            logits -= logits.max(axis=1, keepdims=True)
            out = np.exp(logits)
        else:
            out = np.column_stack([m.predict(probs[:, k]) for k, m in enumerate(self.isotonic_)])
            out = np.clip(out, 1e-6, None)
        return out / out.sum(axis=1, keepdims=True)

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "temperature": self.temperature_} if self.method == "temperature" \
            else {"method": self.method}


def _fit_temperature(probs: np.ndarray, gold: np.ndarray) -> float:
    from scipy.optimize import minimize_scalar

    log_p = np.log(np.clip(probs, 1e-12, 1.0))

    def nll(log_t: float) -> float:
        z = log_p / math.exp(log_t)
        z -= z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(z).sum(axis=1))
        return float(-(z[np.arange(len(gold)), gold] - log_norm).mean())

    return float(math.exp(minimize_scalar(nll, bounds=(-4.0, 4.0), method="bounded").x))


# --- plots -----------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_reliability(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, buckets: int = 10,
                     title: str = "Reliability") -> Path:
    """Accuracy against confidence per bucket, one line per named set of scores, with ECE in the legend."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect")
    for name, (probs, gold) in curves.items():
        points = [b for b in reliability(probs, gold, buckets) if b["count"]]
        ax.plot([b["confidence"] for b in points], [b["accuracy"] for b in points], marker="o",
                label=f"{name} (ECE {ece(probs, gold, buckets):.3f})")
    ax.set_xlabel("confidence (max S)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_ece_by_n(series: dict[str, dict[int, float]], path: Path, expected: dict[str, float] | None = None,
                  title: str = "ECE against ensemble size") -> Path:
    """ECE of the votes at each N, with the expected estimator as a horizontal line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    colours = plt.get_cmap("tab10" if len(series) <= 10 else "tab20")
    for i, (name, points) in enumerate(series.items()):
        ns = sorted(points)
        colour = colours(i % colours.N)
        ax.plot(ns, [points[n] for n in ns], marker="o", color=colour, label=name)
        if expected and name in expected:
            ax.axhline(expected[name], ls="--", color=colour, lw=1)
    ax.set_xlabel("N (answers per utterance)")
    ax.set_ylabel("ECE")
    ax.set_title(title + ("\n(solid: votes at N; dashed: expected estimator)" if expected else ""), fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")  # the legend sits outside the axes
    plt.close(fig)
    return path
