"""Table 1 of arXiv 2503.05620, reproduced: fine-tune only vs pointwise vs pairwise pretraining, then gold.

For each seed: a student pretrained on the teacher's soft scores over the pool (pairwise: intra-dialogue
pairs with the adaptive-margin loss; pointwise: soft-label cross-entropy), then fine-tuned on 1 / 5 / 10 /
25 % of the pool's gold labels (nested subsets drawn with the seed); the fine-tune-only student starts from
the plain encoder. Accuracy and macro-F1 on the test dialogues.

Two pools:
- `--pool small` (default): the first 200 training dialogues, teacher scores from
  benchmarks/data/teacher_scores/ (teacher_scores.py), tested on the test dialogues scored there too;
  writes table1_<dataset>.json.
- `--pool large` (issue 25): the whole labelled training set of benchmarks/data/teacher_pool/
  (teacher_pool.py; `--dialogues N` takes its first N), tested on the whole test split; writes
  table1_large_<dataset>.json.
`--teacher simulated` replaces the teacher by simulated ones made from gold labels
(dialpref.student.simulated, levels low / high) and adds `_simulated` to the name; its fine-tune-only rows
are those of the real table (they never see a teacher).

Sized for a 2-core CPU: windows of the utterance + 2 previous turns, 64 tokens, 1 pretraining epoch,
fine-tuning for max(60, 3 epochs) steps of 16 windows (learning rates chosen on one 25 % fine-tune-only
run: 5e-5 left it at the majority class). Resumable: each finished (method, fraction, seed) is written at
once and skipped on a rerun.

    python benchmarks/table1.py --dataset dailydialog_acts --seeds 0 1 2
    python benchmarks/table1.py --dataset dailydialog_acts --teacher simulated --levels low high
    nice -n 10 python benchmarks/table1.py --dataset meld_sentiment --pool large > /work/logs/t1.log 2>&1 &
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, SHARED_DATA, write_result  # noqa: E402
from teacher_scores import OUT as SCORES, TEST, TRAIN  # noqa: E402

from dialpref.data import Rejects, read_dialogues  # noqa: E402
from dialpref.evaluate.classification import classification  # noqa: E402
from dialpref.label.tasks import BUILTIN  # noqa: E402
from dialpref.rows import read_rows_strict  # noqa: E402
from dialpref.student.model import Student, StudentConfig  # noqa: E402
from dialpref.student.simulated import LEVELS, simulate_scores  # noqa: E402
from dialpref.student.train import TrainConfig  # noqa: E402

TASKS = {"dailydialog_acts": "dialogue_act", "meld_sentiment": "sentiment"}
METHODS = ("finetune_only", "pointwise", "pairwise")
THREADS = 2


@dataclass
class Part:
    """The windows of one part (pool or test) that have a gold label, their teacher scores and gold indices."""

    dialogues: int
    windows: list
    scores: np.ndarray | None
    gold: np.ndarray


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=list(TASKS), required=True)
    parser.add_argument("--pool", choices=("small", "large"), default="small")
    parser.add_argument("--dialogues", type=int, default=None, help="large pool: its first N dialogues (default all)")
    parser.add_argument("--teacher", choices=("real", "simulated"), default="real")
    parser.add_argument("--levels", nargs="+", default=list(LEVELS), help="simulated noise levels")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--fractions", nargs="+", type=float, default=[1, 5, 10, 25])
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--pretrain-epochs", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=THREADS)
    return parser.parse_args(argv)


# --- data ----------------------------------------------------------------------------------------
def keep(windows, by_key, task, need_scores: bool = True) -> Part:
    """Windows with a gold label (and teacher scores, where needed), their S matrix and gold indices."""
    names = task.class_names
    kept = [w for w in windows if by_key.get(w.key, {}).get("gold") in names
            and (by_key[w.key].get("scores") or not need_scores)]
    scores = np.array([[by_key[w.key]["scores"][c] for c in names] for w in kept]) if need_scores else None
    gold = np.array([names.index(by_key[w.key]["gold"]) for w in kept])
    return Part(len({w.dialogue_id for w in kept}), kept, scores, gold)


def small_part(dataset: str, part: str, task, probe: Student) -> Part:
    """A part scored by teacher_scores.py (the rows hold scores and gold)."""
    rows = read_rows_strict(SCORES / f"{dataset}_{part}.jsonl.gz")
    by_key = {(r["dialogue_id"], r["turn_index"]): r for r in rows}
    path, split = (TRAIN if part == "pool" else TEST)[dataset]
    ids = dict.fromkeys(r["dialogue_id"] for r in rows)
    dialogues = list(read_dialogues(SHARED_DATA / path, split=split, limit=len(ids)))
    if [d.id for d in dialogues] != list(ids):
        raise SystemExit(f"{dataset}/{part}: the cached teacher scores are for other dialogues; rerun teacher_scores.py")
    out = keep(probe.windows(dialogues), by_key, task)
    out.dialogues = len(dialogues)
    return out


def gold_rows(dialogues, task) -> dict:
    return {(d.id, i): {"gold": task.gold(t.labels)} for d in dialogues for i, t in enumerate(d.turns)}


def large_parts(dataset: str, task, probe: Student, limit: int | None) -> tuple[Part, Part]:
    """The teacher_pool.py pool (its first `limit` dialogues) and the whole test split (gold only)."""
    from teacher_pool import load_pool

    scores = load_pool(dataset, limit)
    wanted = dict.fromkeys(key[0] for key in scores)
    path, split = TRAIN[dataset]
    dialogues = [d for d in read_dialogues(SHARED_DATA / path, Rejects(echo=False), split=split, limit=len(wanted))
                 if d.id in wanted]
    by_key = {k: {**v, **scores.get(k, {})} for k, v in gold_rows(dialogues, task).items()}
    pool = keep(probe.windows(dialogues), by_key, task)
    pool.dialogues = len(dialogues)
    test_path, test_split = TEST[dataset]
    tests = list(read_dialogues(SHARED_DATA / test_path, Rejects(echo=False), split=test_split))
    test = keep(probe.windows(tests), gold_rows(tests, task), task, need_scores=False)
    test.dialogues = len(tests)
    return pool, test


def load_parts(args, task, config: StudentConfig) -> tuple[Part, Part]:
    probe = Student(task, config)
    if args.pool == "large":
        return large_parts(args.dataset, task, probe, args.dialogues)
    return small_part(args.dataset, "pool", task, probe), small_part(args.dataset, "test", task, probe)


def teachers(args, pool: Part, task) -> dict[str, np.ndarray]:
    """Noise level -> S over the pool: the real teacher's, or simulated ones from the pool's gold."""
    if args.teacher == "real":
        return {"real": pool.scores}
    ids = [w.dialogue_id for w in pool.windows]
    return {level: simulate_scores(pool.gold, ids, len(task.classes), LEVELS[level], seed=0) for level in args.levels}


# --- training ------------------------------------------------------------------------------------
def finetune_config(n: int, seed: int, threads: int = THREADS) -> TrainConfig:
    return TrainConfig(steps=max(60, math.ceil(3 * n / 16)), batch_windows=16, learning_rate=2e-4,
                       head_learning_rate=2e-3, seed=seed, threads=threads)


def gold_subsets(seed: int, n: int, fractions, classes: int) -> dict[str, np.ndarray]:
    """Nested gold subsets of the pool: the first f % of one seeded permutation (at least one per class)."""
    order = np.random.default_rng(seed).permutation(n)
    return {str(f): order[:max(classes, round(f / 100 * n))] for f in fractions}


def start(task, config, seed: int, method: str, scores, pool: Part, args, speeds: dict, level: str) -> Student:
    """The student fine-tuning starts from: the plain encoder, or pretrained on the teacher's scores."""
    student = Student(task, config, seed=seed).build()
    if method == "finetune_only":
        return student
    options = {"alpha": args.alpha, "seed": seed} if method == "pairwise" else {}
    history = student.pretrain(pool.windows, scores, method, TrainConfig(
        epochs=args.pretrain_epochs, batch_windows=32, learning_rate=1e-4, head_learning_rate=2e-3, seed=seed,
        threads=args.threads), **options).history_[-1]
    speeds.setdefault(f"{level}/{method}", []).append(history["windows_per_second"])
    print(f"[{level} seed {seed}] {method} pretrain {history['seconds']} s {history['windows_per_second']} windows/s",
          flush=True)
    return student


def finetune_and_test(student: Student, chosen: np.ndarray, pool: Part, test: Part, seed: int, threads: int) -> dict:
    names = student.task.class_names
    history = student.fit([pool.windows[i] for i in chosen], [names[pool.gold[i]] for i in chosen],
                          finetune_config(len(chosen), seed, threads)).history_[-1]
    return {**evaluate(student, test.windows, test.gold), "gold_examples": int(len(chosen)),
            "finetune_seconds": history["seconds"]}


def evaluate(student, windows, gold) -> dict:
    predicted = student.predict_proba(windows).argmax(-1)
    return classification(gold, predicted, range(len(student.task.classes)))


# --- figures -------------------------------------------------------------------------------------
def summarise(runs: dict, metrics: tuple[str, ...] = ("accuracy", "macro_f1")) -> dict:
    """Per method and fraction: the per-seed results, and each metric's mean and spread over seeds."""
    table = {}
    for method, by_fraction in runs.items():
        table[method] = {}
        for fraction, by_seed in by_fraction.items():
            entry = {"per_seed": by_seed}
            for metric in metrics:
                values = [v[metric] for v in by_seed.values()]
                entry[metric] = round(float(np.mean(values)), 4)
                entry[metric + "_std"] = round(float(np.std(values)), 4)
            table[method][fraction] = entry
    return table


def teacher_quality(scores: np.ndarray, gold: np.ndarray) -> dict:
    predicted = scores.argmax(1)
    # macro-F1 over the classes that occur in gold or predictions (scikit-learn's default, as before)
    return classification(gold, predicted, sorted(set(gold.tolist()) | set(predicted.tolist())))


def result_name(args) -> str:
    return ("table1_large_" if args.pool == "large" else "table1_") + args.dataset + (
        "_simulated" if args.teacher == "simulated" else "")


def payload(args, task, config, pool: Part, test: Part, sets: dict, runs: dict, speeds: dict, seconds: float) -> dict:
    quality_of = test if args.pool == "small" else pool  # the large pool's test split has no teacher scores
    out = {"dataset": args.dataset, "task": task.name, "teacher": args.teacher,
           "pool": {"dialogues": pool.dialogues, "utterances": len(pool.windows),
                    **({"teacher": "gemma3-270m (causal, unlabelled prior)", "source": "teacher_pool.py"}
                       if args.pool == "large" else {})},
           "test": {"dialogues": test.dialogues, "utterances": len(test.windows)},
           "student": {"encoder": "all-MiniLM-L6-v2", "context_turns": config.context_turns,
                       "max_length": config.max_length, "pretrain_epochs": args.pretrain_epochs, "alpha": args.alpha,
                       "threads": args.threads,
                       "finetune": "max(60, 3 epochs) steps of 16 windows, lr 2e-4 (head 2e-3)",
                       "pretrain": "batches of whole dialogues up to 32 windows, lr 1e-4 (head 2e-3)"},
           "fractions_percent": args.fractions, "seeds": args.seeds,
           "gold_examples": {str(f): max(len(task.classes), round(f / 100 * len(pool.windows))) for f in args.fractions},
           "teacher_accuracy": teacher_quality(quality_of.scores, quality_of.gold) if args.teacher == "real" else None,
           "teacher_accuracy_on": "test" if args.pool == "small" else "pool (train gold)",
           "majority_class_accuracy": round(float(np.bincount(test.gold).max() / len(test.gold)), 4),
           "pretrain_windows_per_second": speeds, "runs": runs,
           "table": summarise(runs) if args.teacher == "real" else {lv: summarise(by) for lv, by in runs.items()},
           "wall_seconds": round(seconds, 1)}
    if args.teacher == "simulated":
        out.update(simulated=True, noise_models={lv: LEVELS[lv].as_dict() for lv in args.levels},
                   simulated_teacher_accuracy_on_pool={lv: round(float((s.argmax(1) == pool.gold).mean()), 4)
                                                       for lv, s in sets.items()})
    return out


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    task, config = BUILTIN[TASKS[args.dataset]], StudentConfig()
    pool, test = load_parts(args, task, config)
    sets = teachers(args, pool, task)
    name = result_name(args)
    previous = json.loads((RESULTS / f"{name}.json").read_text()) if (RESULTS / f"{name}.json").exists() else {}
    real_file = RESULTS / f"{name.removesuffix('_simulated')}.json"
    real_runs = json.loads(real_file.read_text()).get("runs", {}) if args.teacher == "simulated" and \
        real_file.exists() else {}
    runs, speeds = previous.get("runs", {}), previous.get("pretrain_windows_per_second", {})
    started = time.perf_counter() - previous.get("wall_seconds", 0)

    def save():
        write_result(name, payload(args, task, config, pool, test, sets, runs, speeds, time.perf_counter() - started))

    for seed in args.seeds:
        subsets = gold_subsets(seed, len(pool.windows), args.fractions, len(task.classes))
        for level, scores in sets.items():
            target = runs if args.teacher == "real" else runs.setdefault(level, {})
            for method in METHODS:
                if method == "finetune_only" and args.teacher == "simulated":
                    target.setdefault(method, real_runs.get(method, {}))
                    continue
                todo = [f for f in subsets if str(seed) not in target.get(method, {}).get(f, {})]
                if not todo:
                    continue
                student = start(task, config, seed, method, scores, pool, args, speeds, level)
                state = copy.deepcopy(student.model_.state_dict())
                for fraction in todo:
                    student.model_.load_state_dict(state)
                    result = finetune_and_test(student, subsets[fraction], pool, test, seed, args.threads)
                    target.setdefault(method, {}).setdefault(fraction, {})[str(seed)] = result
                    print(f"[{level} seed {seed}] {method} {fraction}%: {result}", flush=True)
                    save()
    save()


if __name__ == "__main__":
    main()
