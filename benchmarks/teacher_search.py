"""Point 4 of the labelling issue: which teacher configuration labels best here? Measured on dev dialogues.

For every packaged model, every built-in per-utterance prompt (class names,
letters, yes/no per class, few-shot with gold examples from the training
split) and the causal prompt, with no prior correction, the content-free prior
the unlabelled-mean prior and the content-free prior followed by EM
class frequencies (none uses gold), plus ensembles of prompts:
accuracy, macro-F1 and ECE (10 buckets) against the majority class, seconds
and prompt tokens evaluated per label. Expected estimator (one forward pass per
prompt). The best configuration (highest worst-case accuracy margin over the
majority class across the two datasets, then macro-F1) is written as `best`.

    python benchmarks/teacher_search.py --dialogues 25
    python benchmarks/teacher_search.py --dialogues 25 --models gemma3-270m --keep-others   # rerun one model
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402
from _labelling import DATASETS, ensemble, evaluate, load_set, majority, run_bank, with_prior  # noqa: E402

from dialpref.label.bank import load_bank  # noqa: E402
from dialpref.label.causal import PROMPT_ID as CAUSAL, label_causal  # noqa: E402
from dialpref.teachers.cache import CachedTeacher, TeacherCache  # noqa: E402
from dialpref.teachers.llamacpp import LlamaCppTeacher  # noqa: E402
from dialpref.teachers.packaged import MODELS, is_installed  # noqa: E402

PROMPTS = ["choice_names@v1", "choice_letters@v1", "yes_no@v1", "few_shot@v1"]
ENSEMBLES = {"bank4": PROMPTS, "choice3": ["choice_names@v1", "choice_letters@v1", "few_shot@v1"],
             "names+fewshot": ["choice_names@v1", "few_shot@v1"]}
PRIORS = ["none", "content_free", "unlabelled", "content_free_em"]
CACHE = Path(__file__).resolve().parent / ".cache" / "teacher.sqlite"
RESULT = Path(__file__).resolve().parent / "results" / "teacher_search.json"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dialogues", type=int, default=25, help="dev dialogues per dataset")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--keep-others", action="store_true",
                        help="keep the previous result's figures for models not run now (ranked with the new ones)")
    return parser.parse_args()


def cost(seconds: float, tokens: int, labels: int) -> dict:
    return {"seconds_per_label": round(seconds / labels, 4), "tokens_evaluated_per_label": round(tokens / labels, 1)}


def prompt_configs(teacher, task, dialogues, examples) -> tuple[dict, dict]:
    """Each bank prompt alone under each prior: figures, and the rows the ensembles are built from."""
    per_prompt_rows, results = {}, {}
    for prompt_id in PROMPTS:
        bank = load_bank([prompt_id], examples)
        rows, seconds, tokens = run_bank(teacher, task, bank, dialogues)
        per_prompt_rows[prompt_id] = rows
        for prior in PRIORS:
            fixed = with_prior(rows, prior, task, teacher, bank, dialogues)
            results[f"{prompt_id}|{prior}"] = {**evaluate(ensemble(fixed, [prompt_id], task), fixed, task),
                                                **cost(seconds, tokens, len(rows))}
            per_prompt_rows[f"{prompt_id}|{prior}"] = fixed
    return per_prompt_rows, results


def causal_configs(teacher, task, dialogues) -> dict:
    """Causal mode (the dialogue read once) under each prior."""
    t0, before = time.perf_counter(), teacher.evaluated_tokens
    rows = [r for d in dialogues for r in label_causal(teacher, task, d)]
    spent = cost(time.perf_counter() - t0, teacher.evaluated_tokens - before, len(rows))
    return {f"{CAUSAL}|{prior}": {**evaluate(ensemble(fixed, [CAUSAL], task), fixed, task), **spent}
            for prior in PRIORS for fixed in [with_prior(rows, prior, task, teacher, None, dialogues)]}


def ensemble_configs(per_prompt_rows: dict, task) -> dict:
    """The named prompt ensembles under each prior, from the single prompts' rows (no new calls)."""
    results = {}
    for name, members in ENSEMBLES.items():
        for prior in PRIORS:
            merged = [{**rows[0], "per_prompt": {p: per_prompt_rows[f"{p}|{prior}"][i]["per_prompt"][p]
                                                 for p in members}}
                      for i, rows in enumerate(zip(*(per_prompt_rows[f"{p}|{prior}"] for p in members)))]
            results[f"{name}|{prior}"] = evaluate(ensemble(merged, members, task), merged, task)
    return results


def one_dataset(dataset: str, args, cache, previous, candidates: dict) -> dict:
    task, dialogues, examples = load_set(dataset, "dev", args.dialogues)
    entry: dict = {"models": {}}
    if previous is not None:
        for model, results in previous["datasets"][dataset]["models"].items():
            if model not in args.models:
                entry["models"][model] = {**results, "_from_previous_run": previous.get("finished")}
                for config, metrics in results.items():
                    if isinstance(metrics, dict):
                        candidates.setdefault(f"{model}|{config}", {})[dataset] = metrics
        entry["majority"] = previous["datasets"][dataset]["majority"]
    for model in args.models:
        if not is_installed(MODELS[model]):
            entry["models"][model] = {"skipped": f"not installed ({MODELS[model].install})"}
            continue
        teacher = CachedTeacher(LlamaCppTeacher(model, n_ctx=4096), cache)
        per_prompt_rows, results = prompt_configs(teacher, task, dialogues, examples)
        results.update(causal_configs(teacher, task, dialogues))
        results.update(ensemble_configs(per_prompt_rows, task))
        entry["models"][model] = results
        for config, metrics in results.items():
            candidates.setdefault(f"{model}|{config}", {})[dataset] = metrics
        entry["majority"] = majority(per_prompt_rows[PROMPTS[0]], task)
        print(dataset, model, "done", flush=True)
    return entry


def rank(out: dict, candidates: dict) -> None:
    """Best configuration: the largest worst-case accuracy margin over the majority class, then macro-F1."""
    def margin(config: str) -> tuple[float, float]:
        scores = candidates[config]
        if len(scores) < len(DATASETS):
            return (-1.0, 0.0)
        worst = min(scores[d]["accuracy"] - out["datasets"][d]["majority"]["accuracy"] for d in scores)
        return (round(worst, 4), sum(scores[d]["macro_f1"] for d in scores) / len(scores))

    ranked = sorted(candidates, key=margin, reverse=True)
    out["ranking_rule"] = "max of min over datasets (accuracy - majority accuracy), then mean macro-F1"
    out["top10"] = [{"config": c, "worst_accuracy_margin": margin(c)[0], "mean_macro_f1": round(margin(c)[1], 4),
                     **{d: candidates[c][d] for d in candidates[c]}} for c in ranked[:10]]
    out["best"] = ranked[0]
    best_f1 = max(candidates, key=lambda c: margin(c)[1])
    out["best_macro_f1"] = {"config": best_f1, **{d: candidates[best_f1][d] for d in candidates[best_f1]}}
    print("best:", ranked[0], margin(ranked[0]))


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    cache = TeacherCache(CACHE)
    out: dict = {"dialogues_per_dataset": args.dialogues, "split": "dev (DailyDialog validation, MELD dev)",
                 "estimator": "expected", "datasets": {}}
    candidates: dict[str, dict[str, dict]] = {}
    previous = json.loads(RESULT.read_text()) if args.keep_others and RESULT.exists() else None
    for dataset in DATASETS:
        out["datasets"][dataset] = one_dataset(dataset, args, cache, previous, candidates)
    rank(out, candidates)
    out["wall_seconds"] = round(time.perf_counter() - started, 1)
    write_result("teacher_search", out)


if __name__ == "__main__":
    main()
