"""Are the fine-tune defaults right for small gold sets? (issue 20)

A gold-only student (the packaged MiniLM encoder, a fresh head) is fine-tuned on 1 %, 5 % and 10 % of the
gold acts of a 200-dialogue DailyDialog pool, with the default schedule (`finetune_schedule`: 3 epochs but
at least 60 steps, lr 2e-4), the old default (3 epochs at 1e-4), and a small grid of steps x learning rate.
Each is scored on 100 held-out validation dialogues against the majority class. Every finished run is kept in
benchmarks/results/finetune_defaults.json as it ends, so a killed run resumes where it stopped.

    nice python benchmarks/finetune_defaults.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, SHARED_DATA, write_result  # noqa: E402

from dialpref.data import Rejects, read_dialogues  # noqa: E402
from dialpref.label.tasks import BUILTIN  # noqa: E402
from dialpref.student.model import Student, StudentConfig  # noqa: E402
from dialpref.student.train import TrainConfig, finetune_schedule  # noqa: E402

SHARES = (0.01, 0.05, 0.10)
GRID_STEPS = (15, 60, 120)
GRID_LR = (1e-4, 2e-4, 5e-4)


def runs_for(n_gold: int) -> dict[str, tuple[int, float]]:
    steps, lr = finetune_schedule(n_gold)
    plans = {"default": (steps, lr), "old_default": (max(1, math.ceil(3 * n_gold / 16)), 1e-4)}
    plans.update({f"grid_{s}_{l:g}": (s, l) for s in GRID_STEPS for l in GRID_LR})
    return plans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    task = BUILTIN["dialogue_act"]
    source = SHARED_DATA / "dailydialog" / "data.zip"
    pool = list(read_dialogues(source, Rejects(echo=False), split="train", limit=200))
    held = list(read_dialogues(source, Rejects(echo=False), split="validation", limit=100))
    probe = Student(task, StudentConfig(context_turns=2), seed=args.seed)
    pool_windows = [w for w in probe.windows(pool) if task.gold(_turn(pool, w).labels)]
    eval_windows = [w for w in probe.windows(held) if task.gold(_turn(held, w).labels)]
    eval_gold = [task.gold(_turn(held, w).labels) for w in eval_windows]
    majority = Counter(eval_gold).most_common(1)[0][1] / len(eval_gold)
    done_path = RESULTS / "finetune_defaults.json"
    results = json.loads(done_path.read_text()).get("runs", []) if done_path.exists() else []
    done = {(r["share"], r["plan"]) for r in results}
    for share in SHARES:
        chosen = random.Random(args.seed).sample(pool_windows, max(1, round(share * len(pool_windows))))
        labels = [task.gold(_turn(pool, w).labels) for w in chosen]
        for plan, (steps, lr) in runs_for(len(chosen)).items():
            if (share, plan) in done:
                continue
            student = Student(task, StudentConfig(context_turns=2), seed=args.seed)
            started = time.perf_counter()
            student.fit(chosen, labels, TrainConfig(steps=steps, batch_windows=16, learning_rate=lr, seed=args.seed,
                                                    threads=args.threads))
            predicted = [task.class_names[i] for i in student.predict_proba(eval_windows).argmax(axis=1)]
            accuracy = sum(p == g for p, g in zip(predicted, eval_gold)) / len(eval_gold)
            share_of_top = Counter(predicted).most_common(1)[0][1] / len(predicted)
            results.append({"share": share, "gold": len(chosen), "plan": plan, "steps": steps, "lr": lr,
                            "accuracy": round(accuracy, 4), "predicted_top_share": round(share_of_top, 3),
                            "collapsed": share_of_top > 0.95, "seconds": round(time.perf_counter() - started, 1)})
            print(json.dumps(results[-1]), flush=True)
            write_result("finetune_defaults", _summary(results, majority, len(pool_windows), len(eval_gold)))


def _turn(dialogues, window):
    by_id = getattr(_turn, "cache", {})
    if id(dialogues) not in by_id:
        by_id[id(dialogues)] = {d.id: d for d in dialogues}
        _turn.cache = by_id
    return by_id[id(dialogues)][window.dialogue_id].turns[window.turn_index]


def _summary(results, majority: float, pool: int, held: int) -> dict:
    verdict = {}
    for share in SHARES:
        rows = [r for r in results if r["share"] == share]
        grid = [r for r in rows if r["plan"].startswith("grid_")]
        default = next((r for r in rows if r["plan"] == "default"), None)
        if default and grid:
            best = max(grid, key=lambda r: r["accuracy"])
            verdict[str(share)] = {"gold": default["gold"], "default_accuracy": default["accuracy"],
                                   "best_grid": best["plan"], "best_grid_accuracy": best["accuracy"],
                                   "default_share_of_best": round(default["accuracy"] / best["accuracy"], 3),
                                   "default_collapsed": default["collapsed"],
                                   "old_default_accuracy": next((r["accuracy"] for r in rows
                                                                 if r["plan"] == "old_default"), None)}
    return {"pool_gold_utterances": pool, "eval_utterances": held, "majority_accuracy": round(majority, 4),
            "verdict": verdict, "runs": results}


if __name__ == "__main__":
    main()
