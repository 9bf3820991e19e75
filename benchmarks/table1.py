"""Table 1 of arXiv 2503.05620, reproduced: fine-tune only vs pointwise vs pairwise pretraining, then gold.

For each seed: a student pretrained on the teacher's soft scores over the pool (pairwise: intra-dialogue
pairs with the adaptive-margin loss; pointwise: soft-label cross-entropy), then fine-tuned on 1 / 5 / 10 /
25 % of the pool's gold labels (nested subsets drawn with the seed); the fine-tune-only student starts from
the plain encoder. Accuracy and macro-F1 on the test dialogues whose teacher scores are cached too.

Teacher scores come from benchmarks/data/teacher_scores/ (written once by teacher_scores.py), so this reruns
without the teacher. `--teacher simulated` replaces them by simulated teachers made from gold labels
(dialpref.student.simulated, levels low / high) and writes table1_<dataset>_simulated.json; its
fine-tune-only rows are those of the real table (they never see a teacher).

Sized for a 2-core CPU: pool = the first 200 training dialogues, windows of the utterance + 2 previous
turns, 64 tokens, 1 pretraining epoch, fine-tuning for max(60, 3 epochs) steps of 16 windows
(learning rates chosen on one 25 % fine-tune-only run: 5e-5 left it at the majority class).
Resumable: each finished (method, fraction, seed) is written at once and skipped on a rerun.

    python benchmarks/table1.py --dataset dailydialog_acts --seeds 0 1 2
    python benchmarks/table1.py --dataset dailydialog_acts --teacher simulated --levels low high
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, SHARED_DATA, write_result  # noqa: E402
from teacher_scores import OUT as SCORES, TEST, TRAIN  # noqa: E402

from dialpref.data import read_dialogues  # noqa: E402
from dialpref.label.tasks import BUILTIN  # noqa: E402
from dialpref.evaluate.classification import classification  # noqa: E402
from dialpref.student.model import Student, StudentConfig  # noqa: E402
from dialpref.student.simulated import LEVELS, simulate_scores  # noqa: E402
from dialpref.student.train import TrainConfig  # noqa: E402

TASKS = {"dailydialog_acts": "dialogue_act", "meld_sentiment": "sentiment"}
METHODS = ("finetune_only", "pointwise", "pairwise")
THREADS = 2


def load_part(dataset: str, part: str, task):
    rows = [json.loads(line) for line in gzip.open(SCORES / f"{dataset}_{part}.jsonl.gz", "rt")]
    by_key = {(r["dialogue_id"], r["turn_index"]): r for r in rows}
    path, split = (TRAIN if part == "pool" else TEST)[dataset]
    ids = dict.fromkeys(r["dialogue_id"] for r in rows)
    dialogues = [d for d in read_dialogues(SHARED_DATA / path, split=split, limit=len(ids))]
    if [d.id for d in dialogues] != list(ids):
        raise SystemExit(f"{dataset}/{part}: the cached teacher scores are for other dialogues; rerun teacher_scores.py")
    return dialogues, by_key


def keep(windows, by_key, task):
    """Windows with teacher scores and a gold label, their S matrix and gold indices."""
    names = task.class_names
    kept = [w for w in windows if by_key.get(w.key, {}).get("scores") and by_key[w.key]["gold"] in names]
    scores = np.array([[by_key[w.key]["scores"][c] for c in names] for w in kept])
    gold = np.array([names.index(by_key[w.key]["gold"]) for w in kept])
    return kept, scores, gold


def evaluate(student, windows, gold) -> dict:
    predicted = student.predict_proba(windows).argmax(-1)
    return classification(gold, predicted, range(len(student.task.classes)))


def finetune_config(n: int, seed: int) -> TrainConfig:
    return TrainConfig(steps=max(60, math.ceil(3 * n / 16)), batch_windows=16, learning_rate=2e-4,
                       head_learning_rate=2e-3, seed=seed, threads=THREADS)


def summarise(runs: dict) -> dict:
    table = {}
    for method, by_fraction in runs.items():
        table[method] = {}
        for fraction, by_seed in by_fraction.items():
            entry = {"per_seed": by_seed}
            for metric in ("accuracy", "macro_f1"):
                values = [v[metric] for v in by_seed.values()]
                entry[metric] = round(float(np.mean(values)), 4)
                entry[metric + "_std"] = round(float(np.std(values)), 4)
            table[method][fraction] = entry
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=list(TASKS), required=True)
    parser.add_argument("--teacher", choices=("real", "simulated"), default="real")
    parser.add_argument("--levels", nargs="+", default=list(LEVELS), help="simulated noise levels")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--fractions", nargs="+", type=float, default=[1, 5, 10, 25])
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--pretrain-epochs", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    task = BUILTIN[TASKS[args.dataset]]
    pool_dialogues, pool_rows = load_part(args.dataset, "pool", task)
    test_dialogues, test_rows = load_part(args.dataset, "test", task)
    config = StudentConfig()
    probe = Student(task, config)
    pool, pool_s, pool_gold = keep(probe.windows(pool_dialogues), pool_rows, task)
    test, test_s, test_gold = keep(probe.windows(test_dialogues), test_rows, task)
    del probe
    name = f"table1_{args.dataset}" + ("_simulated" if args.teacher == "simulated" else "")
    out = RESULTS / f"{name}.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    teachers = {"real": pool_s} if args.teacher == "real" else {
        level: simulate_scores(pool_gold, [w.dialogue_id for w in pool], len(task.classes), LEVELS[level], seed=0)
        for level in args.levels}
    real_runs = {}
    if args.teacher == "simulated" and (RESULTS / f"table1_{args.dataset}.json").exists():
        real_runs = json.loads((RESULTS / f"table1_{args.dataset}.json").read_text()).get("runs", {})
    runs = previous.get("runs", {})
    pretrain_speed = previous.get("pretrain_windows_per_second", {})
    started = time.perf_counter() - previous.get("wall_seconds", 0)

    def save():
        payload = {"dataset": args.dataset, "task": task.name, "teacher": args.teacher,
                   "pool": {"dialogues": len(pool_dialogues), "utterances": len(pool)},
                   "test": {"dialogues": len(test_dialogues), "utterances": len(test)},
                   "student": {"encoder": "all-MiniLM-L6-v2", "context_turns": config.context_turns,
                               "max_length": config.max_length, "pretrain_epochs": args.pretrain_epochs,
                               "alpha": args.alpha, "threads": THREADS,
                               "finetune": "max(60, 3 epochs) steps of 16 windows, lr 2e-4 (head 2e-3)",
                               "pretrain": "batches of whole dialogues up to 32 windows, lr 1e-4 (head 2e-3)"},
                   "fractions_percent": args.fractions, "seeds": args.seeds,
                   "teacher_accuracy": teacher_quality(test_s, test_gold) if args.teacher == "real" else None,
                   "majority_class_accuracy": round(float(np.bincount(test_gold).max() / len(test_gold)), 4),
                   "pretrain_windows_per_second": pretrain_speed, "runs": runs, "table": summarise_all(runs),
                   "wall_seconds": round(time.perf_counter() - started, 1)}
        if args.teacher == "simulated":
            payload["simulated"] = True
            payload["noise_models"] = {lv: LEVELS[lv].as_dict() for lv in args.levels}
            payload["simulated_teacher_accuracy_on_pool"] = {
                lv: round(float((s.argmax(1) == pool_gold).mean()), 4) for lv, s in teachers.items()}
        write_result(name, payload)

    def summarise_all(runs):
        if args.teacher == "real":
            return summarise(runs)
        return {level: summarise(by) for level, by in runs.items()}

    for seed in args.seeds:
        order = np.random.default_rng(seed).permutation(len(pool))
        subsets = {str(f): order[:max(len(task.classes), round(f / 100 * len(pool)))] for f in args.fractions}
        for level, scores in teachers.items():
            target = runs if args.teacher == "real" else runs.setdefault(level, {})
            for method in METHODS:
                if method == "finetune_only" and args.teacher == "simulated":
                    target.setdefault(method, real_runs.get(method, {}))
                    continue
                todo = [f for f in subsets if str(seed) not in target.get(method, {}).get(f, {})]
                if not todo:
                    continue
                base = Student(task, config, seed=seed)
                if method != "finetune_only":
                    history = base.pretrain(pool, scores, method, TrainConfig(
                        epochs=args.pretrain_epochs, batch_windows=32, learning_rate=1e-4, head_learning_rate=2e-3,
                        seed=seed, threads=THREADS), **({"alpha": args.alpha, "seed": seed} if method == "pairwise" else {})).history_[-1]
                    pretrain_speed.setdefault(f"{level}/{method}", []).append(history["windows_per_second"])
                    print(f"[{level} seed {seed}] {method} pretrain {history['seconds']} s "
                          f"{history['windows_per_second']} windows/s", flush=True)
                state = copy.deepcopy(base.build().model_.state_dict())
                for fraction in todo:
                    base.model_.load_state_dict(state)
                    chosen = subsets[fraction]
                    history = base.fit([pool[i] for i in chosen], [task.class_names[pool_gold[i]] for i in chosen],
                                       finetune_config(len(chosen), seed)).history_[-1]
                    result = {**evaluate(base, test, test_gold), "gold_examples": int(len(chosen)),
                              "finetune_seconds": history["seconds"]}
                    target.setdefault(method, {}).setdefault(fraction, {})[str(seed)] = result
                    print(f"[{level} seed {seed}] {method} {fraction}%: {result}", flush=True)
                    save()
    save()


def teacher_quality(scores: np.ndarray, gold: np.ndarray) -> dict:
    predicted = scores.argmax(1)
    # macro-F1 over the classes that occur in gold or predictions (scikit-learn's default, as before)
    return classification(gold, predicted, sorted(set(gold.tolist()) | set(predicted.tolist())))


if __name__ == "__main__":
    main()
