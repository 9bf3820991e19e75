"""Dialogue state tracking (issue 22): the teacher's zero-shot tracking on WOZ 2.0 / CamRest676 test dialogues.

Per teacher configuration (teacher model x estimator), the first N test dialogues are labelled with the
built-in slot task (`woz_state` / `camrest_state`) through `dialpref.label.run.label_run`, the same path as
`dialpref label --task woz_state`; the rows' predicted changes are accumulated into states and scored by
joint goal accuracy, per-slot accuracy, change F1 and pooled ECE (`evaluate.state_tracking.rows_report`),
after the per-slot unlabelled prior (`dialpref label`'s default) and before it (`before_prior`), with seconds and prompt tokens per turn. Rows and teacher calls go to benchmarks/.cache/ (not committed), so an interrupted run repeats no finished turn; each configuration is written to
benchmarks/results/dst_<dataset>.json under `teacher` as soon as it finishes (other sections are kept).

    python benchmarks/dst.py --dataset woz --dialogues 100
    nice python benchmarks/dst.py --dataset camrest --dialogues 100 --teachers smollm2-135m gemma3-270m \
        --estimators expected > /work/logs/dst.log 2>&1 &

Not here yet (issue 22): Table 1 for DST (three methods x gold fractions x seeds, real and simulated
teachers) and the gold ceiling; they need the teacher's scores over the training dialogues first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, SHARED_DATA, write_result  # noqa: E402

from dialpref.data import Rejects, read_dialogues  # noqa: E402
from dialpref.label.run import LabelConfig, label_run  # noqa: E402
from dialpref.label.tasks import BUILTIN  # noqa: E402
from dialpref.teachers.factory import make_teacher  # noqa: E402

DATASETS = {"woz": "woz_state", "camrest": "camrest_state"}
CACHE_DIR = Path(__file__).resolve().parent / ".cache"  # ignored by git: rows and teacher calls
ROWS = CACHE_DIR / "dst_teacher"
CACHE = CACHE_DIR / "dst-teacher-cache.sqlite"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=list(DATASETS), required=True)
    parser.add_argument("--dialogues", type=int, default=100, help="the first N test dialogues")
    parser.add_argument("--teachers", nargs="+", default=["gemma3-270m"], help="default: the embedded default")
    parser.add_argument("--estimators", nargs="+", default=["expected"], choices=["expected", "votes"])
    parser.add_argument("--votes", type=int, default=5)
    return parser.parse_args()


def teacher_figures(args: argparse.Namespace, teacher_name: str, estimator: str, dialogues) -> dict:
    """One configuration over the test dialogues: the tracking figures and the cost per turn."""
    task = BUILTIN[DATASETS[args.dataset]]
    teacher = make_teacher(teacher_name, cache_path=CACHE)
    ROWS.mkdir(parents=True, exist_ok=True)
    output = ROWS / f"{args.dataset}_{teacher_name}_{estimator}_{args.dialogues}.jsonl"
    started = time.perf_counter()
    summary = label_run(teacher, task, dialogues, LabelConfig(estimator=estimator, votes=args.votes), output)
    seconds = time.perf_counter() - started
    gold, raw = summary.get("gold", {}), summary.get("gold_before_prior", {})
    return {"teacher": teacher_name, "estimator": estimator, **({"votes": args.votes} if estimator == "votes" else {}),
            "prior": "unlabelled (per slot)", "dialogues": len(dialogues), "turns": summary["utterances"],
            "joint_goal_accuracy": gold.get("joint_goal_accuracy"), "slot_accuracy": gold.get("slot_accuracy"),
            "change": gold.get("change"), "ece": gold.get("ece"),
            "before_prior": {k: raw.get(k) for k in ("joint_goal_accuracy", "slot_accuracy", "change", "ece")},
            "seconds_per_turn": None if summary["answered_from_cache"] else round(seconds / summary["utterances"], 3),
            "tokens_per_turn": summary["prompt_tokens_per_label"],
            "tokens_evaluated_per_turn": summary.get("tokens_evaluated_per_label"),
            "without_scores": summary["without_scores"], "rows": str(output.relative_to(CACHE_DIR.parent))}


def main() -> None:
    args = parse_args()
    name = f"dst_{args.dataset}"
    path = RESULTS / f"{name}.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    dialogues = list(read_dialogues(SHARED_DATA / args.dataset / "data.zip", Rejects(echo=False), split="test",
                                    limit=args.dialogues))
    teacher = previous.get("teacher", {})
    for teacher_name in args.teachers:
        for estimator in args.estimators:
            key = f"{teacher_name}/{estimator}/{args.dialogues}"
            before = teacher.get(key, {})
            if before.get("prior") and before.get("seconds_per_turn") is not None:
                continue  # measured already
            teacher[key] = teacher_figures(args, teacher_name, estimator, dialogues)
            if teacher[key]["seconds_per_turn"] is None:  # answered from the cache: the first run's cost stands
                for cost in ("seconds_per_turn", "tokens_evaluated_per_turn"):
                    teacher[key][cost] = before.get(cost)
            print(key, json.dumps(teacher[key]), flush=True)
            keep = {k: v for k, v in previous.items() if k not in ("command", "machine", "finished", "teacher")}
            write_result(name, {**keep, "dataset": args.dataset, "task": DATASETS[args.dataset], "teacher": teacher})


if __name__ == "__main__":
    main()
