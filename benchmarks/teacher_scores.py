"""Label the student benchmarks' dialogues once with the default teacher and keep the scores in the repo.

The Table-1 benchmark (`table1.py`) trains students on these scores, so it reruns without the teacher.
Teacher: the labelling benchmarks' best configuration here, Gemma-3-270M in causal mode (the dialogue read
once, "Class:" asked after each utterance), with the label prior estimated on the same unlabelled rows
divided out (`unlabelled`); the raw scores are kept beside the corrected ones.

Pool: the first --pool training dialogues of each dataset (the gold fractions of Table 1 are taken from
this pool); test: the first --dd-test / --meld-test test dialogues (the same ones `labeling_quality.py`
measured). One gzipped JSONL per part in benchmarks/data/teacher_scores/, one row per utterance:
dialogue_id, turn_index, gold, scores (prior-corrected), scores_raw.

    python benchmarks/teacher_scores.py --pool 200 --dd-test 100 --meld-test 50
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from _labelling import SHARED_DATA, DATASETS, majority  # noqa: E402

from dialpref.data import read_dialogues  # noqa: E402
from dialpref.evaluate.calibration_error import quality  # noqa: E402
from dialpref.label.calibration import arrays  # noqa: E402
from dialpref.label.causal import label_causal  # noqa: E402
from dialpref.label.prior import apply_priors, estimate_priors  # noqa: E402
from dialpref.label.tasks import BUILTIN  # noqa: E402
from dialpref.teachers.cache import CachedTeacher, TeacherCache  # noqa: E402
from dialpref.teachers.llamacpp import LlamaCppTeacher  # noqa: E402

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache" / "teacher.sqlite"
OUT = HERE / "data" / "teacher_scores"
TEACHER = "gemma3-270m"
TRAIN = {"dailydialog_acts": ("dailydialog/data.zip", "train"), "meld_sentiment": ("meld/train_sent_emo.csv", None)}
TEST = {"dailydialog_acts": ("dailydialog/data.zip", "test"), "meld_sentiment": ("meld/test_sent_emo.csv", None)}


def dialogues_of(spec, limit):
    path, split = spec
    return list(read_dialogues(SHARED_DATA / path, split=split, limit=limit) if split
                else read_dialogues(SHARED_DATA / path, limit=limit))


def label_part(teacher, task, dialogues, name):
    rows = []
    for d in tqdm(dialogues, desc=name, unit="dialogue"):
        rows.extend(label_causal(teacher, task, d))
    fixed = apply_priors(rows, estimate_priors("unlabelled", rows, task), "unlabelled", task)
    compact = []
    for raw, row in zip(rows, fixed):
        compact.append({"dialogue_id": row["dialogue_id"], "turn_index": row["turn_index"], "gold": row["gold"],
                        "scores": row["scores"], "scores_raw": raw["scores"]})
    return compact


def write(rows, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for r in rows:
            r = {**r, "scores": r["scores"] and {k: round(v, 5) for k, v in r["scores"].items()},
                 "scores_raw": r["scores_raw"] and {k: round(v, 5) for k, v in r["scores_raw"].items()}}
            f.write(json.dumps(r) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", type=int, default=200, help="training dialogues per dataset")
    parser.add_argument("--dd-test", type=int, default=100)
    parser.add_argument("--meld-test", type=int, default=50)
    args = parser.parse_args()
    cache = TeacherCache(CACHE)
    teacher = CachedTeacher(LlamaCppTeacher(TEACHER, n_ctx=4096), cache)
    summary = {"teacher": TEACHER, "mode": "causal", "prior": "unlabelled", "parts": {}}
    for dataset in DATASETS:
        task = BUILTIN[DATASETS[dataset][1]]
        for part, spec, limit in (("pool", TRAIN[dataset], args.pool),
                                  ("test", TEST[dataset], args.dd_test if dataset.startswith("daily") else args.meld_test)):
            started = time.perf_counter()
            rows = label_part(teacher, task, dialogues_of(spec, limit), f"{dataset}/{part}")
            path = OUT / f"{dataset}_{part}.jsonl.gz"
            write(rows, path)
            entry = {"file": str(path.relative_to(HERE.parent)), "dialogues": limit, "utterances": len(rows),
                     "seconds": round(time.perf_counter() - started, 1), "majority": majority(rows, task)}
            for key in ("scores", "scores_raw"):
                probs, gold = arrays(rows, task.class_names, key)
                entry[key] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in quality(probs, gold).items()}
            summary["parts"][f"{dataset}/{part}"] = entry
            print(dataset, part, entry, flush=True)
    write_result("teacher_scores", summary)


if __name__ == "__main__":
    main()
