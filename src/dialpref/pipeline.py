"""The whole method in one run: real dialogues -> teacher scores -> pairwise student -> gold fine-tune ->
evaluation, with one HTML report (teacher calibration, student against teacher, confusion matrix, time).

`dialpref quickstart` calls `distill_run` on embedded defaults; every stage is also its own command.
"""

from __future__ import annotations

import json
import math
import random
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from dialpref.data import Rejects, read_dialogues
from dialpref.label.run import LabelConfig, label_run
from dialpref.label.tasks import load_task


@dataclass
class DistillConfig:
    """source: dialogues (any supported format); train_split / eval_split: where the teacher-labelled
    training dialogues and the evaluation dialogues come from (None: the first dialogues train, the next
    ones evaluate). gold_fraction: share of the training utterances whose gold labels the fine-tune uses."""

    source: str
    task: str = "dialogue_act"
    teacher: str = "gemma3-270m"
    train_split: Optional[str] = "train"
    eval_split: Optional[str] = "test"
    train_dialogues: int = 40
    eval_dialogues: int = 20
    gold_fraction: float = 0.1
    mode: str = "causal"
    prior: str = "unlabelled"
    alpha: float = 0.5
    seed: int = 0
    threads: Optional[int] = None


@contextmanager
def _timed(timings: dict, stage: str):
    started = time.perf_counter()
    yield
    timings[stage] = round(time.perf_counter() - started, 2)


def distill_run(config: DistillConfig, output: Path, cache_path: Path,
                say: Callable[[str], None] = print) -> dict:
    from dialpref.report.html import write_report
    from dialpref.report.plots import plot_confusion, plot_student_vs_teacher
    from dialpref.student.model import Student, StudentConfig
    from dialpref.student.train import TrainConfig
    from dialpref.teachers.factory import make_teacher

    output.mkdir(parents=True, exist_ok=True)
    task = load_task(config.task)
    timings: dict[str, float] = {}
    with _timed(timings, "read dialogues"):
        sink = Rejects(output / "input-rejects.jsonl", echo=False)
        if config.train_split or config.eval_split:
            train = list(read_dialogues(config.source, sink, split=config.train_split, limit=config.train_dialogues))
            held = list(read_dialogues(config.source, sink, split=config.eval_split, limit=config.eval_dialogues))
        else:
            both = list(read_dialogues(config.source, sink, limit=config.train_dialogues + config.eval_dialogues))
            train, held = both[:config.train_dialogues], both[config.train_dialogues:]
        sink.close()
    if not train or not held:
        raise ValueError(f"{config.source}: need training and evaluation dialogues, read {len(train)} and {len(held)}")
    teacher = make_teacher(config.teacher, cache_path=cache_path)
    label = LabelConfig(mode=config.mode if not config.teacher.startswith("http") else "prefix", prior=config.prior)
    say(f"teacher {teacher.model} labels {len(train)} training and {len(held)} evaluation dialogues")
    with _timed(timings, "teacher labelling"):
        train_summary = label_run(teacher, task, train, label, output / "teacher_train.jsonl", source=config.source)
        eval_summary = label_run(teacher, task, held, label, output / "teacher_eval.jsonl", source=config.source)
    from dialpref.label.output import read_rows
    train_rows = {(r["dialogue_id"], r["turn_index"]): r for r in read_rows(output / "teacher_train.jsonl")}
    eval_rows = {(r["dialogue_id"], r["turn_index"]): r for r in read_rows(output / "teacher_eval.jsonl")}

    student = Student(task, StudentConfig(), seed=config.seed)
    windows = [w for w in student.windows(train) if train_rows.get(w.key, {}).get("scores")]
    scores = np.array([[train_rows[w.key]["scores"][c] for c in task.class_names] for w in windows])
    say(f"pairwise pretraining on {len(windows)} windows")
    with _timed(timings, "student pretraining (pairwise)"):
        pretrain = student.pretrain(windows, scores, "pairwise", TrainConfig(epochs=1, seed=config.seed,
                                                                             threads=config.threads),
                                    alpha=config.alpha, seed=config.seed)
    turns = {(d.id, i): t for d in train + held for i, t in enumerate(d.turns)}
    gold_windows = [w for w in student.windows(train) if task.gold(turns[w.key].labels)]
    finetune = None
    if gold_windows and config.gold_fraction > 0:
        random.Random(config.seed).shuffle(gold_windows)
        chosen = gold_windows[:max(1, round(config.gold_fraction * len(gold_windows)))]
        say(f"fine-tuning on {len(chosen)} gold utterances ({config.gold_fraction:.0%})")
        with _timed(timings, "student fine-tuning (gold)"):
            finetune = student.fit(chosen, [task.gold(turns[w.key].labels) for w in chosen], TrainConfig(
                steps=max(60, math.ceil(3 * len(chosen) / 16)), batch_windows=16, learning_rate=2e-4,
                seed=config.seed, threads=config.threads))
    with _timed(timings, "evaluation"):
        test = [w for w in student.windows(held) if eval_rows.get(w.key, {}).get("scores")]
        probs = student.predict_proba(test)
        teacher_probs = np.array([[eval_rows[w.key]["scores"][c] for c in task.class_names] for w in test])
    names = task.class_names
    predicted = [names[i] for i in probs.argmax(1)]
    teacher_says = [names[i] for i in teacher_probs.argmax(1)]
    gold = [task.gold(turns[w.key].labels) for w in test]
    result = {"config": asdict(config), "train_utterances": len(windows), "eval_utterances": len(test),
              "teacher_cache": teacher.cache.stats() if hasattr(teacher, "cache") else None,
              "student_teacher_agreement": round(float(np.mean([a == b for a, b in zip(predicted, teacher_says)])), 4)}
    from sklearn.metrics import accuracy_score, f1_score
    if all(g is not None for g in gold) and gold:
        for who, pred in (("student", predicted), ("teacher", teacher_says)):
            result[who] = {"accuracy": round(accuracy_score(gold, pred), 4),
                           "macro_f1": round(f1_score(gold, pred, labels=names, average="macro", zero_division=0), 4)}
        majority = max(set(gold), key=gold.count)
        result["majority_class_accuracy"] = round(gold.count(majority) / len(gold), 4)
    with _timed(timings, "saving and report"):
        student.save(output / "student")
        scatter = plot_student_vs_teacher(teacher_probs, probs, names, output / "student_vs_teacher.png")
        reference = gold if "student" in result else teacher_says
        confusion = plot_confusion(reference, predicted, names, output / "confusion.png",
                                   "student vs gold" if "student" in result else "student vs teacher (no gold)")
        result["timings_seconds"] = timings
        sections = [
            ("Result", [[{"who": k, **v} for k, v in result.items() if k in ("student", "teacher")] or
                        "no gold labels: the student is compared with its teacher only",
                        {k: result[k] for k in ("train_utterances", "eval_utterances", "student_teacher_agreement",
                                                "majority_class_accuracy") if k in result}]),
            ("Teacher calibration (evaluation dialogues)",
             [Path(p) for p in (eval_summary.get("reliability_png"),) if p] or ["no gold labels: no reliability plot"]),
            ("Student scores against the teacher's", [scatter]),
            ("Confusion matrix", [confusion]),
            ("Where the time went", [[{"stage": k, "seconds": v} for k, v in timings.items()]]),
            ("Runs", [{"teacher_train": {k: train_summary.get(k) for k in ("teacher", "utterances", "seconds",
                                                                          "labels_per_second")},
                       "pretrain": {k: pretrain[k] for k in ("steps", "windows", "seconds", "windows_per_second")},
                       "finetune": finetune and {k: finetune[k] for k in ("steps", "windows", "seconds")}}]),
        ]
        result["report"] = str(write_report(output / "report.html", f"dialpref run: {task.name} from {config.source}",
                                            sections))
    (output / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
