"""The student's gold ceiling (issue 25): fine-tuned on 100 % of a training set's gold labels, no teacher.

Table 1 shows what teacher pretraining adds at 1-25 % gold; this is the figure those fractions climb
toward, set against the paper's 76.50 accuracy on DailyDialog acts (ToD-BERT: 72.40). One seed: the point is
the level, not the spread. Same student and windows as table1.py (all-MiniLM-L6-v2, utterance + 2 previous
turns, 64 tokens); evaluated on the whole test split (DailyDialog: 1,000 dialogues; MELD: all 280).

Each dataset's figures are written as soon as they exist, so a rerun skips what is done.

    nice -n 10 python benchmarks/gold_ceiling.py --threads 1 > /work/logs/ceiling.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, SHARED_DATA, write_result  # noqa: E402

from dialpref.data import Rejects, read_dialogues  # noqa: E402
from dialpref.evaluate.classification import classification, majority_class  # noqa: E402
from dialpref.label.tasks import BUILTIN  # noqa: E402
from dialpref.student.model import Student, StudentConfig  # noqa: E402
from dialpref.student.train import TrainConfig  # noqa: E402

NAME = "gold_ceiling"
# dataset -> task, (train file, split), (test file, split), fine-tune epochs (a larger set needs fewer passes)
SETS = {"dailydialog_acts": ("dialogue_act", ("dailydialog/data.zip", "train"), ("dailydialog/data.zip", "test"), 1.0),
        "meld_sentiment": ("sentiment", ("meld/train_sent_emo.csv", None), ("meld/test_sent_emo.csv", None), 3.0)}
PAPER = {"dailydialog_acts": {"paper_accuracy": 76.50, "tod_bert_accuracy": 72.40}}


def labelled_windows(student: Student, path: str, split: str | None):
    """The split's windows that carry a gold label of the task, and those labels."""
    dialogues = list(read_dialogues(SHARED_DATA / path, Rejects(echo=False), split=split))
    gold = {(d.id, i): student.task.gold(t.labels) for d in dialogues for i, t in enumerate(d.turns)}
    windows = [w for w in student.windows(dialogues) if gold.get(w.key)]
    return len(dialogues), windows, [gold[w.key] for w in windows]


def ceiling(dataset: str, threads: int, seed: int) -> dict:
    task_name, train_part, test_part, epochs = SETS[dataset]
    student = Student(BUILTIN[task_name], StudentConfig(), seed=seed)
    n_train, train, train_gold = labelled_windows(student, *train_part)
    n_test, test, test_gold = labelled_windows(student, *test_part)
    print(f"{dataset}: {len(train)} gold windows from {n_train} dialogues; test {len(test)} from {n_test}", flush=True)
    config = TrainConfig(epochs=epochs, batch_windows=32, learning_rate=1e-4, head_learning_rate=2e-3, seed=seed,
                         threads=threads)
    last = [time.perf_counter()]

    def progress(step: int, total: int, loss: float) -> None:
        if time.perf_counter() - last[0] > 60 or step == total:
            last[0] = time.perf_counter()
            print(f"{time.strftime('%H:%M:%S')} {dataset} step {step}/{total} loss {loss:.4f}", flush=True)

    history = student.fit(train, train_gold, config, on_step=progress).history_[-1]
    started = time.perf_counter()
    predicted = student.predict(test)
    names = student.task.class_names
    return {"train": {"dialogues": n_train, "utterances": len(train)}, "gold_examples": len(train),
            "test": {"dialogues": n_test, "utterances": len(test)},
            **classification(test_gold, predicted, names),
            "majority_class": majority_class(test_gold, names),
            "train_seconds": history["seconds"], "train_windows_per_second": history["windows_per_second"],
            "predict_seconds": round(time.perf_counter() - started, 1), "train_config": config.as_dict(),
            "final_loss": float(np.mean(history["loss"][-50:])), **PAPER.get(dataset, {})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (1 leaves a core free)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = RESULTS / f"{NAME}.json"
    done = json.loads(out.read_text()).get("datasets", {}) if out.exists() else {}
    for dataset in args.datasets:
        if dataset in done:
            print(f"{dataset}: done before, kept", flush=True)
            continue
        done[dataset] = ceiling(dataset, args.threads, args.seed)
        print(f"{dataset}: {json.dumps({k: done[dataset][k] for k in ('accuracy', 'macro_f1')})}", flush=True)
        write_result(NAME, {"student": {"encoder": "all-MiniLM-L6-v2", "context_turns": 2, "max_length": 64},
                            "seed": args.seed, "threads": args.threads, "datasets": done})


if __name__ == "__main__":
    main()
