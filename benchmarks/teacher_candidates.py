"""Which packaged GGUF should be the default embedded teacher? Measure each on the same labelled sample.

Zero-shot, one forward pass per label (option probabilities from the logits,
the dialogue as a shared prefix). Tasks: DailyDialog dialogue acts and MELD
sentiment, on the first dialogues of their test splits. Reports accuracy,
macro-F1, the majority-class baseline, seconds per label and prompt tokens
evaluated per label (after KV-prefix reuse), raw and with the label prior divided
out (content-free inputs, or the mean over the unlabelled utterances: no gold used).

    python benchmarks/teacher_candidates.py --dialogues 20
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _common import SHARED_DATA, write_result  # noqa: E402

from dialpref.data import read_dialogues  # noqa: E402
from dialpref.label.prior import apply_prior, content_free_prior, unlabelled_prior  # noqa: E402
from dialpref.label.quick import label_dialogues  # noqa: E402
from dialpref.label.tasks import BUILTIN  # noqa: E402
from dialpref.teachers.llamacpp import LlamaCppTeacher  # noqa: E402
from dialpref.teachers.packaged import MODELS, is_installed  # noqa: E402

SAMPLES = {
    "dailydialog_acts": ("dailydialog/data.zip", "dialogue_act", {"split": "test"}),
    "meld_sentiment": ("meld/test_sent_emo.csv", "sentiment", {}),
}


def macro_f1(gold: list[str], pred: list[str], classes: list[str]) -> float:
    scores = []
    for c in classes:
        tp = sum(g == c and p == c for g, p in zip(gold, pred))
        fp = sum(g != c and p == c for g, p in zip(gold, pred))
        fn = sum(g == c and p != c for g, p in zip(gold, pred))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dialogues", type=int, default=20, help="test dialogues per task")
    parser.add_argument("--models", nargs="*", default=[m for m in MODELS])
    args = parser.parse_args()
    results: dict = {"dialogues_per_task": args.dialogues, "tasks": {}}
    for task_name, (path, spec_name, kw) in SAMPLES.items():
        spec = BUILTIN[spec_name]
        dialogues = list(read_dialogues(SHARED_DATA / path, limit=args.dialogues, **kw))
        gold_all = [spec.gold(t.labels) for d in dialogues for t in d.turns if t.role in spec.roles]
        gold_all = [g for g in gold_all if g is not None]
        majority, majority_n = Counter(gold_all).most_common(1)[0]
        entry = {"utterances": len(gold_all), "majority_class": majority,
                 "majority_accuracy": round(majority_n / len(gold_all), 3), "models": {}}
        for name in args.models:
            if not is_installed(MODELS[name]):
                entry["models"][name] = {"skipped": f"not installed ({MODELS[name].install})"}
                continue
            teacher = LlamaCppTeacher(name, n_ctx=4096)
            started = time.perf_counter()
            rows = list(label_dialogues(teacher, dialogues, spec))
            elapsed = time.perf_counter() - started
            result = {"seconds_per_label": round(elapsed / len(rows), 3),
                      "prompt_tokens_evaluated_per_label": round(teacher.evaluated_tokens / len(rows), 1),
                      "failed": sum(1 for r in rows if r.get("error"))}
            classes = list(spec.classes)
            started = time.perf_counter()
            cf_prior = content_free_prior(teacher, spec, dialogues)
            cf_seconds = time.perf_counter() - started
            variants = {"none": rows,
                        "content_free": apply_prior(rows, cf_prior, "content_free"),
                        "unlabelled": apply_prior(rows, unlabelled_prior(rows, classes), "unlabelled")}
            for prior_name, scored in variants.items():
                pairs = [(r["gold"], r["predicted"]) for r in scored if r["gold"] is not None and r["predicted"]]
                gold, pred = [g for g, _ in pairs], [p for _, p in pairs]
                result[f"prior_{prior_name}"] = {
                    "accuracy": round(sum(g == p for g, p in pairs) / len(pairs), 3),
                    "macro_f1": round(macro_f1(gold, pred, classes), 3),
                    "predicted_distribution": dict(Counter(pred).most_common())}
            result["accuracy"] = result["prior_none"]["accuracy"]
            result["content_free_prior"] = {c: round(v, 3) for c, v in cf_prior.items()}
            result["content_free_prior_seconds"] = round(cf_seconds, 2)
            entry["models"][name] = result
            print(task_name, name, entry["models"][name], flush=True)
            del teacher
        results["tasks"][task_name] = entry
    ranking = {}
    for name in args.models:
        for prior in ("none", "content_free", "unlabelled"):
            gains = [t["models"][name][f"prior_{prior}"]["accuracy"] - t["majority_accuracy"]
                     for t in results["tasks"].values() if f"prior_{prior}" in t["models"].get(name, {})]
            if gains:
                ranking[f"{name} / prior={prior}"] = round(sum(gains) / len(gains), 3)
    results["mean_accuracy_above_majority"] = ranking
    results["best_configuration"] = max(ranking, key=ranking.get)
    print("written", write_result("teacher_candidates", results))


if __name__ == "__main__":
    main()
