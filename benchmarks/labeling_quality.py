"""How good and how calibrated are the teacher's soft scores? Votes at N = 1..30 against the expected estimator.

For each teacher configuration (model, prompt bank, prior correction) on DailyDialog test dialogues (acts)
and MELD test dialogues (sentiment): accuracy, macro-F1 and ECE (10 buckets; 5 as in the paper beside it)
of the expected estimator and of the votes at N = 1, 2, 5, 10, 20, 30, with the majority-class baseline.

The N votes here are drawn from each prompt's constrained answer distribution (the `distribution` sampler, temperature 1, top-k 40, top-p 0.95:
what grammar-constrained sampling of a one-token answer draws, without re-running the model). On the first
few dialogues they are also drawn by real generation (`generate`), and the two are compared.

    python benchmarks/labeling_quality.py --dd 100 --meld 50 --configs default=smollm2-135m:choice_names@v1:none
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_result  # noqa: E402
from _labelling import ensemble, evaluate, load_set, majority, run_bank, vote_shares_at, with_prior  # noqa: E402

from dialpref.label.bank import load_bank  # noqa: E402
from dialpref.label.calibration import plot_ece_by_n, plot_reliability  # noqa: E402
from dialpref.label.causal import PROMPT_ID as CAUSAL, label_causal  # noqa: E402
from dialpref.label.scoring import ScoringConfig, drawn_votes  # noqa: E402
from dialpref.teachers.cache import CachedTeacher, TeacherCache  # noqa: E402
from dialpref.teachers.llamacpp import LlamaCppTeacher  # noqa: E402

NS = (1, 2, 5, 10, 20, 30)
CACHE = Path(__file__).resolve().parent / ".cache" / "teacher.sqlite"
PLOTS = RESULTS / "labeling_plots"


def gold_of(rows, task):
    keep = [i for i, r in enumerate(rows) if r["gold"] in task.classes]
    return keep, np.array([task.class_names.index(rows[i]["gold"]) for i in keep])


def causal_rows(teacher, task, dialogues):
    before, started = teacher.evaluated_tokens, time.perf_counter()
    rows = [r for d in dialogues for r in label_causal(teacher, task, d)]
    return rows, time.perf_counter() - started, teacher.evaluated_tokens - before


def with_drawn_votes(rows, n):
    """Causal rows given n votes drawn from their distributions (`dialpref.label.scoring.drawn_votes`)."""
    return [{**r, "votes": drawn_votes(r, n)} for r in rows]


def one(teacher, task, dialogues, examples, bank_spec: str, prior: str, check_dialogues: int, tag: str) -> dict:
    causal = bank_spec == CAUSAL
    bank = load_bank("choice_names@v1" if causal else bank_spec, examples)
    if causal:
        rows, seconds, tokens = causal_rows(teacher, task, dialogues)
        fixed = with_prior(rows, prior, task, teacher, None, dialogues)
        prompt_ids = [CAUSAL]
    else:
        rows, seconds, tokens = run_bank(teacher, task, bank, dialogues)
        fixed = with_prior(rows, prior, task, teacher, bank, dialogues)
        prompt_ids = [p.id for p in bank.usable()]
    expected = ensemble(fixed, prompt_ids, task)
    divisors = (fixed[0].get("prior") or {}).get("values") if fixed else None
    out = {"labels": len(rows), "seconds_per_label": round(seconds / len(rows), 4),
           "tokens_evaluated_per_label": round(tokens / len(rows), 1),
           "majority_class_accuracy": round(majority(rows, task)["accuracy"], 4),
           "expected": {**evaluate(expected, fixed, task), "ece_m5": evaluate(expected, fixed, task, 5)["ece"]}}
    config = ScoringConfig(estimator="votes", votes=max(NS), sampler="distribution")
    vote_rows = with_drawn_votes(rows, max(NS)) if causal else run_bank(teacher, task, bank, dialogues, config)[0]
    by_n = {}
    for n in NS:
        shares = vote_shares_at(vote_rows, n, task, prior, divisors)
        by_n[n] = {**evaluate(shares, vote_rows, task), "ece_m5": evaluate(shares, vote_rows, task, 5)["ece"]}
    out["votes"] = by_n
    out["ece_by_n"] = {"votes": {n: by_n[n]["ece"] for n in NS}, "expected": out["expected"]["ece"]}
    for key in ("accuracy", "macro_f1", "ece"):
        out[key] = out["expected"][key]
    keep, gold = gold_of(fixed, task)
    plot_reliability({"expected": (expected[keep], gold), "votes N=30": (vote_shares_at(vote_rows, 30, task, prior, divisors)[keep], gold),
                      "votes N=1": (vote_shares_at(vote_rows, 1, task, prior, divisors)[keep], gold)},
                     PLOTS / f"{tag}.reliability.png", title=tag)
    if causal:
        out["generate_check"] = "causal mode has no generation path; its votes are drawn from its distribution"
        return out
    # real generated votes on the first dialogues, against the drawn ones
    some = dialogues[:check_dialogues]
    started = time.perf_counter()
    real, _, _ = run_bank(teacher, task, bank, some, ScoringConfig(estimator="votes", votes=max(NS)))
    drawn = [r for r in vote_rows if r["dialogue_id"] in {d.id for d in some}]
    real_s, drawn_s = vote_shares_at(real, max(NS), task), vote_shares_at(drawn, max(NS), task)
    exp_some = ensemble([r for r in rows if r["dialogue_id"] in {d.id for d in some}], prompt_ids, task)
    out["generate_check"] = {
        "labels": len(real), "votes": max(NS), "seconds": round(time.perf_counter() - started, 1),
        "mean_abs_diff_generate_vs_drawn": round(float(np.abs(real_s - drawn_s).mean()), 4),
        "mean_abs_diff_generate_vs_expected": round(float(np.abs(real_s - exp_some).mean()), 4),
        "unparseable_votes": sum(1 for r in real for v in r["votes"] if not v["classes"]),
        "generate": evaluate(real_s, real, task), "drawn": evaluate(drawn_s, drawn, task)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dd", type=int, default=100, help="DailyDialog test dialogues")
    parser.add_argument("--meld", type=int, default=50, help="MELD test dialogues")
    parser.add_argument("--check-dialogues", type=int, default=3, help="dialogues voted by real generation")
    parser.add_argument("--configs", nargs="+", required=True, help="name=model:bank:prior")
    args = parser.parse_args()
    started = time.perf_counter()
    cache = TeacherCache(CACHE)
    result: dict = {"ns": list(NS), "buckets": 10, "datasets": {}}
    curves: dict = {}
    for dataset, limit in (("dailydialog_acts", args.dd), ("meld_sentiment", args.meld)):
        task, dialogues, examples = load_set(dataset, "test", limit)
        entry = {"dialogues": len(dialogues), "configurations": {}}
        for spec in args.configs:
            name, rest = spec.split("=", 1)
            model, bank_spec, prior = rest.split(":")
            teacher = CachedTeacher(LlamaCppTeacher(model, n_ctx=4096), cache)
            hits, misses = cache.hits, cache.misses
            conf = {"model": model, "bank": bank_spec, "prior": prior,
                    **one(teacher, task, dialogues, examples, bank_spec, prior, args.check_dialogues,
                          f"{dataset}.{name}")}
            conf["teacher_calls"] = {"from_cache": cache.hits - hits, "computed": cache.misses - misses}
            if not conf["teacher_calls"]["computed"]:  # nothing ran: time and tokens say nothing about cost
                conf["seconds_per_label"] = conf["tokens_evaluated_per_label"] = None
                conf["cost_note"] = "every teacher call answered from the cache; costs are in labeling_cost.json"
            entry["configurations"][name] = conf
            curves.setdefault(dataset, {})[name] = conf["ece_by_n"]
            print(dataset, name, conf["accuracy"], conf["macro_f1"], conf["ece"], conf["ece_by_n"], flush=True)
        result["datasets"][dataset] = entry
    for dataset, configurations in curves.items():
        plot_ece_by_n({k: v["votes"] for k, v in configurations.items()}, PLOTS / f"ece_by_n.{dataset}.png",
                      expected={k: v["expected"] for k, v in configurations.items()},
                      title=f"ECE against ensemble size: {dataset} test")
    result["plots"] = sorted(str(p.relative_to(RESULTS)) for p in PLOTS.glob("*.png"))
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    write_result("labeling_quality", result)


if __name__ == "__main__":
    main()
