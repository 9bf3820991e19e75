"""The paper's Fig. 4: how often the teacher's order of a pair is the gold order, by the teacher's score gap.

For each class c (one-vs-rest, y = 1 when the gold label is c) and each pair of utterances (i, j) with
S_i - S_j in a bucket, P(y_i > y_j | y_i != y_j): intra-dialogue pairs (both from one dialogue) against
cross-dialogue pairs (an equal-sized random sample of pairs from different dialogues). If pairs from one
dialogue are more trustworthy, the intra curve rises above the cross one. Teacher scores: the cached real
teacher (teacher_scores.py) and the simulated teachers (labelled as such).

    python benchmarks/pairs_ablation.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_result  # noqa: E402
from teacher_scores import OUT as SCORES  # noqa: E402

from dialpref.label.tasks import BUILTIN  # noqa: E402
from dialpref.rows import read_rows_strict  # noqa: E402
from dialpref.student.simulated import LEVELS, simulate_scores  # noqa: E402

TASKS = {"dailydialog_acts": "dialogue_act", "meld_sentiment": "sentiment"}
EDGES = np.linspace(0, 1, 6)  # |gap| buckets; pairs are oriented so S_i > S_j


def agreement(scores: np.ndarray, gold: np.ndarray, dialogues: np.ndarray, mode: str, rng) -> dict:
    """Per gap bucket: pairs counted and the share whose gold order agrees with the teacher's."""
    n, classes = scores.shape
    ii, jj = np.triu_indices(n, 1)
    same = dialogues[ii] == dialogues[jj]
    if mode == "intra":
        ii, jj = ii[same], jj[same]
    else:
        pick = rng.choice(np.nonzero(~same)[0], size=int(same.sum()), replace=False)
        ii, jj = ii[pick], jj[pick]
    counts, agree = np.zeros(len(EDGES) - 1), np.zeros(len(EDGES) - 1)
    for c in range(classes):
        yi, yj = gold[ii] == c, gold[jj] == c
        informative = yi != yj
        gap = scores[ii, c] - scores[jj, c]
        teacher_says_i = gap > 0
        right = np.where(teacher_says_i, yi, yj)[informative]
        bucket = np.clip(np.digitize(np.abs(gap[informative]), EDGES) - 1, 0, len(EDGES) - 2)
        np.add.at(counts, bucket, 1)
        np.add.at(agree, bucket, right)
    return {"buckets": [f"{a:.1f}-{b:.1f}" for a, b in zip(EDGES[:-1], EDGES[1:])], "pairs": counts.astype(int).tolist(),
            "p_gold_agrees": [round(a / c, 4) if c else None for a, c in zip(agree, counts)]}


def main() -> None:
    rng = np.random.default_rng(0)
    result, panels = {"datasets": {}}, []
    for dataset, task_name in TASKS.items():
        task = BUILTIN[task_name]
        rows = read_rows_strict(SCORES / f"{dataset}_pool.jsonl.gz")
        rows = [r for r in rows if r["scores"] and r["gold"] in task.classes]
        gold = np.array([task.class_names.index(r["gold"]) for r in rows])
        dialogues = np.array([r["dialogue_id"] for r in rows])
        teachers = {"real": np.array([[r["scores"][c] for c in task.class_names] for r in rows])}
        for level in LEVELS:
            teachers[f"simulated_{level}"] = simulate_scores(gold, list(dialogues), len(task.classes), LEVELS[level])
        entry = {}
        for name, scores in teachers.items():
            entry[name] = {mode: agreement(scores, gold, dialogues, mode, rng) for mode in ("intra", "cross")}
            panels.append((f"{dataset}\n{name} teacher", entry[name]))
        result["datasets"][dataset] = entry
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharey=True)
    for ax, (title, entry) in zip(axes.flat, panels):
        for mode, style in (("intra", "o-"), ("cross", "s--")):
            ys = [np.nan if v is None else v for v in entry[mode]["p_gold_agrees"]]
            ax.plot(range(len(ys)), ys, style, label=f"{mode}-dialogue pairs")
        ax.set_xticks(range(len(EDGES) - 1), entry["intra"]["buckets"], fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.axhline(0.5, color="grey", lw=0.5)
        ax.set_xlabel("teacher score gap S_i - S_j")
    axes[0, 0].set_ylabel("P(gold order = teacher order)")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    png = RESULTS / "pairs_ablation.png"
    fig.savefig(png, dpi=110)
    result["plot"] = str(png.relative_to(RESULTS.parent.parent))
    write_result("pairs_ablation", result)
    for dataset, entry in result["datasets"].items():
        for name, modes in entry.items():
            print(dataset, name, "intra", modes["intra"]["p_gold_agrees"], "cross", modes["cross"]["p_gold_agrees"])


if __name__ == "__main__":
    main()
