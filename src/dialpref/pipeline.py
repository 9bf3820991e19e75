"""The whole method in one run, with the three answers a user wants: how good is the student, what does
it cost, can I trust the teacher.

Real dialogues -> teacher scores -> a student pretrained on intra-dialogue pairs and fine-tuned on a little
gold, beside the same student trained on that gold alone and the teacher itself, on the same held-out
utterances; the teacher's seconds per label against the int8 student's milliseconds; the teacher's
reliability diagram where gold exists. One HTML report; every figure in it comes from this run.
`dialpref quickstart` calls `distill_run` on embedded defaults; every stage is also its own command.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np

from dialpref.data import Rejects, read_dialogues
from dialpref.data.schema import Dialogue
from dialpref.label.run import LabelConfig, label_run, resolve_mode
from dialpref.label.tasks import TaskSpec, load_task
from dialpref.evaluate.classification import agreement, classification, majority_class
from dialpref.teachers.packaged import LABEL_MODEL


@dataclass
class DistillConfig:
    """source: dialogues (any supported format); train_split / eval_split: where the teacher-labelled
    training dialogues and the held-out dialogues come from (None: one stream, training first).
    train_utterances / eval_utterances: read dialogues until this many utterances of the task;
    min_turns: dialogues with fewer turns are skipped (greetings teach nothing about context).
    gold_fraction: share of the training utterances whose gold labels the fine-tune uses."""

    source: str
    task: str = "dialogue_act"
    teacher: str = LABEL_MODEL
    train_split: Optional[str] = "train"
    eval_split: Optional[str] = "test"
    train_utterances: int = 1500
    eval_utterances: int = 200
    min_turns: int = 4
    gold_fraction: float = 0.1
    mode: str = "auto"
    prior: str = "unlabelled"
    alpha: float = 0.5
    pretrain_epochs: float = 1.0
    finetune_steps: int = 60
    cost_dialogues: int = 3
    seed: int = 0
    threads: Optional[int] = None


@contextmanager
def _timed(timings: dict, stage: str):
    started = time.perf_counter()
    yield
    timings[stage] = round(time.perf_counter() - started, 2)


def take_dialogues(stream: Iterator[Dialogue], task: TaskSpec, utterances: int, min_turns: int,
                   skipped: Counter) -> list[Dialogue]:
    """Dialogues from `stream` until they hold `utterances` labelled utterances; short ones skipped."""
    taken, count = [], 0
    if utterances <= 0:
        return taken
    for dialogue in stream:
        if len(dialogue.turns) < min_turns:
            skipped["shorter than min_turns"] += 1
            continue
        taken.append(dialogue)
        count += sum(1 for t in dialogue.turns if task.labelled(t))
        if count >= utterances:  # stop before pulling another: on one stream, the next part starts there
            break
    return taken


def read_parts(config: DistillConfig, task: TaskSpec, sink: Rejects) -> tuple[list, list, dict]:
    skipped: Counter = Counter()
    if config.train_split or config.eval_split:
        train = take_dialogues(read_dialogues(config.source, sink, split=config.train_split), task,
                               config.train_utterances, config.min_turns, skipped)
        held = take_dialogues(read_dialogues(config.source, sink, split=config.eval_split), task,
                              config.eval_utterances, config.min_turns, skipped)
    else:
        stream = iter(read_dialogues(config.source, sink))
        train = take_dialogues(stream, task, config.train_utterances, config.min_turns, skipped)
        held = take_dialogues(stream, task, config.eval_utterances, config.min_turns, skipped)
    if not train or not held:
        raise ValueError(f"{config.source}: need training and held-out dialogues of at least {config.min_turns} "
                         f"turns, read {len(train)} and {len(held)}")
    return train, held, dict(skipped)


def _progress(say: Callable[[str], None], what: str, total: int) -> Callable:
    """A labelling callback that says how far it got every tenth of the way (terminal or log alike)."""
    state = {"done": 0, "next": max(1, total // 10), "started": time.perf_counter()}

    def on_dialogue(_dialogue, rows) -> None:
        state["done"] += len(rows)
        if state["done"] >= state["next"] or state["done"] >= total:
            state["next"] += max(1, total // 10)
            say(f"  {what}: {state['done']:,}/{total:,} utterances ({time.perf_counter() - state['started']:.0f} s)")
    return on_dialogue


def teach(teacher, task, train, held, label: LabelConfig, output: Path, source: str, say) -> tuple[dict, dict, dict]:
    """Teacher rows for the training and held-out dialogues, keyed by (dialogue id, turn), and summaries."""
    summaries = {}
    for part, dialogues in (("train", train), ("eval", held)):
        total = sum(1 for d in dialogues for t in d.turns if task.labelled(t))
        summaries[part] = label_run(teacher, task, dialogues, label, output / f"teacher_{part}.jsonl", source=source,
                                    on_dialogue=_progress(say, f"teacher, {part}", total))
    from dialpref.rows import read_rows_strict

    rows = {part: {(r["dialogue_id"], r["turn_index"]): r for r in read_rows_strict(output / f"teacher_{part}.jsonl")}
            for part in ("train", "eval")}
    return rows["train"], rows["eval"], summaries


def teacher_cost(inner, task, held, label: LabelConfig, output: Path, n: int, served: dict | None) -> dict:
    """Seconds per label of the teacher itself (no cache), timed on the first held-out dialogues. A server's
    calls are paid, so it is never called again for this: its cost is the labelling run's own, when that run
    called it (`served`: the held-out run's summary), else unknown."""
    if served is not None:
        known = not served["answered_from_cache"] and served["utterances"]
        return {"seconds_per_label": round(served["seconds"] / served["utterances"], 4) if known else None,
                "labels": served["utterances"], "dialogues": len(held), "from": "the labelling run"}
    summary = label_run(inner, task, held[:n], label, output / "cost" / "teacher_timed.jsonl")
    return {"seconds_per_label": round(summary["seconds"] / max(1, summary["utterances"]), 4),
            "labels": summary["utterances"], "dialogues": min(n, len(held))}


def student_latency(folder: Path, windows, limit: int = 100) -> dict:
    """Median milliseconds of the int8 ONNX student on one utterance at a time, one thread."""
    from dialpref.student.export import OnnxStudent

    onnx = OnnxStudent(folder, "int8", threads=1)
    sample = windows[:limit]
    for w in sample[:5]:
        onnx.predict_proba([w])
    times = []
    for w in sample:
        started = time.perf_counter()
        onnx.predict_proba([w])
        times.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(times), 3), "utterances": len(times), "runtime": "onnx int8, 1 thread"}


def train_students(config, task, train, train_rows, say, timings) -> dict:
    """The pairwise-pretrained student fine-tuned on a little gold, and the same student on that gold alone."""
    from dialpref.student.model import Student, StudentConfig
    from dialpref.student.train import TrainConfig

    student = Student(task, StudentConfig(), seed=config.seed)
    windows = [w for w in student.windows(train) if train_rows.get(w.key, {}).get("scores")]
    scores = np.array([[train_rows[w.key]["scores"][c] for c in task.class_names] for w in windows])
    say(f"pairwise pretraining on {len(windows):,} teacher-labelled utterances")
    with _timed(timings, "student pretraining (pairwise)"):
        pretrain = student.pretrain(windows, scores, "pairwise", TrainConfig(
            epochs=config.pretrain_epochs, seed=config.seed, threads=config.threads), alpha=config.alpha,
            seed=config.seed).history_[-1]
    turns = {(d.id, i): t for d in train for i, t in enumerate(d.turns)}
    gold_windows = [w for w in student.windows(train) if task.gold(turns[w.key].labels)]
    out = {"student": student, "gold_only": None, "pretrain": pretrain, "finetune": None, "gold_examples": 0}
    if not gold_windows or config.gold_fraction <= 0:
        return out
    random.Random(config.seed).shuffle(gold_windows)
    chosen = gold_windows[:max(1, round(config.gold_fraction * len(gold_windows)))]
    labels = [task.gold(turns[w.key].labels) for w in chosen]
    fit = TrainConfig(steps=config.finetune_steps, batch_windows=16, learning_rate=2e-4, seed=config.seed,
                      threads=config.threads)
    say(f"fine-tuning on {len(chosen)} gold utterances ({config.gold_fraction:.0%}), then the same gold alone")
    with _timed(timings, "student fine-tuning (gold)"):
        out["finetune"] = student.fit(chosen, labels, fit).history_[-1]
    baseline = Student(task, StudentConfig(), seed=config.seed)
    with _timed(timings, "gold-only student"):
        baseline.fit(chosen, labels, fit)
    out.update(gold_only=baseline, gold_examples=len(chosen))
    return out


def evaluate(task, held, eval_rows, students: dict) -> dict:
    """Student, gold-only student, teacher and majority class on the same held-out utterances."""
    student = students["student"]
    test = [w for w in student.windows(held) if eval_rows.get(w.key, {}).get("scores")]
    names = task.class_names
    turns = {(d.id, i): t for d in held for i, t in enumerate(d.turns)}
    gold = [task.gold(turns[w.key].labels) for w in test]
    probs = student.predict_proba(test)
    teacher_probs = np.array([[eval_rows[w.key]["scores"][c] for c in names] for w in test])
    said = {"student": [names[i] for i in probs.argmax(1)], "teacher": [names[i] for i in teacher_probs.argmax(1)]}
    if students["gold_only"] is not None:
        said["gold_only"] = students["gold_only"].predict(test)
    result = {"eval_utterances": len(test), "has_gold": bool(gold) and all(g is not None for g in gold),
              "student_teacher_agreement": agreement(said["student"], said["teacher"])}
    if result["has_gold"]:
        for who, predicted in said.items():
            result[who] = classification(gold, predicted, names)
        result["majority_class"] = majority_class(gold, names)
    return {"result": result, "windows": test, "probs": probs, "teacher_probs": teacher_probs, "said": said,
            "gold": gold}


def distill_run(config: DistillConfig, output: Path, cache_path: Path,
                say: Callable[[str], None] = print) -> dict:
    from dialpref.report.quickstart import write_run_report
    from dialpref.student.export import export_onnx
    from dialpref.teachers.cache import CachedTeacher, TeacherCache
    from dialpref.teachers.factory import is_server, make_teacher

    started = time.perf_counter()
    output.mkdir(parents=True, exist_ok=True)
    task = load_task(config.task)
    if task.kind == "slots":
        raise ValueError(f"the quick start runs utterance classification; {task.name!r} is a slots task: see "
                         "docs/state_tracking.md for its label / student / predict commands")
    timings: dict[str, float] = {}
    with _timed(timings, "read dialogues"):
        (output / "input-rejects.jsonl").unlink(missing_ok=True)  # a rerun rewrites its files
        sink = Rejects(output / "input-rejects.jsonl", echo=False)
        train, held, skipped = read_parts(config, task, sink)
        sink.close()
    inner = make_teacher(config.teacher, cache_path=None)
    teacher = CachedTeacher(inner, TeacherCache(cache_path))
    mode = resolve_mode(config.mode, config.teacher)
    label = LabelConfig(mode=mode, prior=config.prior)
    say(f"teacher {teacher.model} ({mode} mode, {config.prior} prior) labels {len(train)} training and "
        f"{len(held)} held-out dialogues")
    with _timed(timings, "teacher labelling"):
        train_rows, eval_rows, summaries = teach(teacher, task, train, held, label, output, config.source, say)
    with _timed(timings, "teacher cost (timed, no cache)"):
        cost = teacher_cost(inner, task, held, label, output, config.cost_dialogues,
                            summaries["eval"] if is_server(config.teacher) else None)
    students = train_students(config, task, train, train_rows, say, timings)
    with _timed(timings, "evaluation"):
        evaluated = evaluate(task, held, eval_rows, students)
    with _timed(timings, "student export and latency"):
        students["student"].save(output / "student")
        export_onnx(students["student"], output / "student")
        latency = student_latency(output / "student", evaluated["windows"])
    result = {"config": asdict(config), "mode": mode, "train_dialogues": len(train), "eval_dialogues": len(held),
              "skipped_dialogues": skipped, "train_utterances": len(train_rows), **evaluated["result"],
              "gold_examples": students["gold_examples"],
              "cost": {"teacher_seconds_per_label": cost["seconds_per_label"],
                       "student_ms_per_utterance": latency["median_ms"],
                       "ratio": (round(cost["seconds_per_label"] * 1000 / latency["median_ms"], 1)
                                 if cost["seconds_per_label"] is not None else None),
                       "teacher_timed_on": cost, "student_timed_on": latency},
              "teacher_runs": {part: {k: s.get(k) for k in ("teacher", "prompts", "utterances", "truncated",
                                                            "answered_from_cache", "seconds", "cache")}
                               for part, s in summaries.items()},
              "pretrain": {k: students["pretrain"][k] for k in ("steps", "windows", "seconds", "windows_per_second")},
              "finetune": students["finetune"] and {k: students["finetune"][k] for k in ("steps", "windows",
                                                                                         "seconds")},
              "timings_seconds": timings}
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    result["report"] = str(write_run_report(output, task, config.source, result, evaluated,
                                            summaries["eval"].get("reliability_png")))
    (output / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
