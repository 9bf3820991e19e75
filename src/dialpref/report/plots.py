"""The run report's plots: student against teacher scores, and a confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402


def plot_student_vs_teacher(teacher: np.ndarray, student: np.ndarray, classes: Sequence[str], path: Path) -> Path:
    """One scatter per class: the teacher's S against the student's P, per utterance."""
    fig, axes = plt.subplots(1, len(classes), figsize=(3.2 * len(classes), 3.2), squeeze=False)
    for k, (ax, name) in enumerate(zip(axes[0], classes)):
        ax.scatter(teacher[:, k], student[:, k], s=8, alpha=0.5)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
        ax.set(xlim=(0, 1), ylim=(0, 1), title=name, xlabel="teacher S")
        if len(teacher) > 2 and teacher[:, k].std() > 0 and student[:, k].std() > 0:
            ax.text(0.03, 0.92, f"r = {np.corrcoef(teacher[:, k], student[:, k])[0, 1]:.2f}", transform=ax.transAxes)
    axes[0][0].set_ylabel("student P")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_confusion(reference: Sequence[str], predicted: Sequence[str], classes: Sequence[str], path: Path,
                   title: str = "", rows_label: str = "gold label", columns_label: str = "predicted label") -> Path:
    """Rows: the reference (gold, or the teacher where there is no gold), named on the y-axis as such."""
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ConfusionMatrixDisplay.from_predictions(reference, predicted, labels=list(classes), ax=ax, colorbar=False,
                                            xticks_rotation=30)
    ax.set(title=title, ylabel=rows_label, xlabel=columns_label)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
