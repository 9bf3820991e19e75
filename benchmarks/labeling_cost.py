"""What a label costs: prompt tokens and time per label with one prompt per utterance (naive), with the
instructions + dialogue as a reused KV prefix, and in causal mode (the dialogue read once); and whether each
mode's distributions equal those of the same prompt computed from scratch.

Also the estimators' cost: tokens processed per label by the expected estimator (one forward pass per prompt)
and by N = 30 sampled votes (real generations, measured on a few dialogues and scaled to N), both in-process
with KV reuse and API-style (every call pays its whole prompt).

    python benchmarks/labeling_cost.py --dialogues 20 --compare-inexact

The teacher runs with exact kernels (see dialpref.teachers.llamacpp); --compare-inexact also measures
llama.cpp's defaults, for the speed that exactness costs and the drift it removes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_result  # noqa: E402
from _labelling import load_set  # noqa: E402

from dialpref.label.bank import load_bank  # noqa: E402
from dialpref.label.causal import causal_pieces, label_causal  # noqa: E402
from dialpref.label.scoring import ScoringConfig, score_dialogue  # noqa: E402
from dialpref.teachers.calls import normalise  # noqa: E402
from dialpref.teachers.llamacpp import LlamaCppTeacher  # noqa: E402
from dialpref.teachers.packaged import MODELS, is_installed  # noqa: E402

VOTE_BANK = "choice_names@v1,choice_letters@v1,few_shot@v1"


def timed(teacher, fn):
    before, started = teacher.evaluated_tokens, time.perf_counter()
    rows = fn()
    return rows, time.perf_counter() - started, teacher.evaluated_tokens - before


def max_diff(a_rows, b_rows) -> float:
    return max(abs(a["scores"][c] - b["scores"][c]) for a, b in zip(a_rows, b_rows) for c in a["scores"])


def modes(teacher, task, bank, dialogues):
    """Rows, seconds and evaluated tokens of the naive, prefix-reuse and causal modes."""
    teacher.reuse_prefix = False
    naive, naive_s, naive_tok = timed(teacher, lambda: [r for d in dialogues for r in score_dialogue(teacher, task, bank, d)])
    teacher.reuse_prefix = True
    reuse, reuse_s, reuse_tok = timed(teacher, lambda: [r for d in dialogues for r in score_dialogue(teacher, task, bank, d)])
    causal, causal_s, causal_tok = timed(teacher, lambda: [r for d in dialogues for r in label_causal(teacher, task, d)])
    return (naive, reuse, causal), (naive_s, reuse_s, causal_s), (naive_tok, reuse_tok, causal_tok)


def causal_vs_fresh(teacher, task, dialogues, causal) -> tuple[float, int]:
    """Largest difference between causal rows and the same prompts from scratch; the utterances' own tokens."""
    fresh_diff, utterance_tokens, k = 0.0, 0, 0
    for d in dialogues:
        head, segments, ask = causal_pieces(task, d)
        for i, turn in enumerate(d.turns):
            if not task.labelled(turn):
                continue
            fresh = normalise(teacher.fresh_option_logprobs([head, *segments[:i + 1], ask], task.class_names).logprobs)
            fresh_diff = max(fresh_diff, max(abs(fresh[c] - causal[k]["scores"][c]) for c in fresh))
            utterance_tokens += len(teacher.tokenize_piece(segments[i]))
            k += 1
    return fresh_diff, utterance_tokens


def estimators(teacher, task, bank, some, votes_n: int) -> dict:
    """Tokens (in-process with KV reuse, and API-style) and seconds per label: expected versus N=30 votes."""
    exp_rows, exp_s, exp_tok = timed(teacher, lambda: [r for d in some for r in score_dialogue(teacher, task, bank, d)])
    config = ScoringConfig(estimator="votes", votes=votes_n, sampler="generate")
    vote_rows, vote_s, vote_prompt_tok = timed(
        teacher, lambda: [r for d in some for r in score_dialogue(teacher, task, bank, d, config)])
    m = len(exp_rows)
    completion_tokens = sum(len(teacher.tokenize_piece(v["raw"])) + 1 for r in vote_rows for v in r["votes"])
    per_vote_inprocess = (vote_prompt_tok + completion_tokens) / (m * votes_n)
    per_vote_api = (sum(r["prompt_tokens"] for r in vote_rows) + completion_tokens) / (m * votes_n)
    exp_api = sum(r["prompt_tokens"] for r in exp_rows) / m
    seconds = {"expected": exp_s / m, "votes_n30": 30 * vote_s / (m * votes_n)}
    return {
        "bank": bank.ids, "labels": m,
        "expected_tokens_per_label": {"in_process_kv_reuse": round(exp_tok / m, 1), "api_style": round(exp_api, 1)},
        "votes_tokens_per_vote": {"in_process_kv_reuse": round(per_vote_inprocess, 1), "api_style": round(per_vote_api, 1)},
        "votes_n30_tokens_per_label": {"in_process_kv_reuse": round(30 * per_vote_inprocess, 1),
                                       "api_style": round(30 * per_vote_api, 1)},
        "expected_over_votes_n30": {"in_process_kv_reuse": round(exp_tok / m / (30 * per_vote_inprocess), 3),
                                    "api_style": round(exp_api / (30 * per_vote_api), 3)},
        "seconds_per_label": {k: round(v, 3) for k, v in seconds.items()},
        "expected_over_votes_n30_seconds": round(seconds["expected"] / seconds["votes_n30"], 3),
        "note": (f"votes measured with N={votes_n} real generations per label" +
                 ("" if votes_n == 30 else " and scaled to N=30")),
    }


MODES = ("naive", "prefix_reuse", "causal")


def inexact(model: str, prompt: str, dialogues, task, examples, exact_seconds) -> dict:
    """The same modes with llama.cpp's repacked kernels and short batches: speed ratio and how far off they are."""
    teacher = LlamaCppTeacher(model, n_ctx=4096, exact=False)
    (naive, reuse, causal), seconds, _ = modes(teacher, task, load_bank(prompt, examples), dialogues)
    fresh_diff, _ = causal_vs_fresh(teacher, task, dialogues, causal)
    return {"labels_per_second": {m: round(len(naive) / s, 2) for m, s in zip(MODES, seconds)},
            "exact_over_inexact_seconds": {m: round(e / s, 3) for m, e, s in zip(MODES, exact_seconds, seconds)},
            "max_abs_prob_diff": {"prefix_reuse_vs_naive": round(max_diff(reuse, naive), 6),
                                  "causal_vs_fresh": round(fresh_diff, 6)}}


def measure(model: str, prompt: str, dialogues, task, examples, vote_dialogues: int, votes_n: int,
            compare_inexact: bool) -> dict:
    teacher = LlamaCppTeacher(model, n_ctx=4096)
    bank = load_bank(prompt, examples)
    out: dict = {"model": model, "prompt": prompt, "exact_kernels": True}
    (naive, reuse, causal), (naive_s, reuse_s, causal_s), (naive_tok, reuse_tok, causal_tok) = modes(
        teacher, task, bank, dialogues)
    n = len(naive)
    fresh_diff, utterance_tokens = causal_vs_fresh(teacher, task, dialogues, causal)
    out["labels"] = n
    out["tokens_per_label"] = {"naive": round(naive_tok / n, 1), "prefix_reuse": round(reuse_tok / n, 1),
                               "causal": round(causal_tok / n, 1)}
    out["utterance_tokens_per_label"] = round(utterance_tokens / n, 1)
    out["causal_over_utterance_tokens"] = round(causal_tok / utterance_tokens, 3)
    out["naive_over_prefix_reuse"] = round(naive_tok / reuse_tok, 2)
    out["labels_per_second"] = {"naive": round(n / naive_s, 2), "prefix_reuse": round(n / reuse_s, 2),
                                "causal": round(n / causal_s, 2)}
    out["max_abs_prob_diff"] = {"prefix_reuse_vs_naive": round(max_diff(reuse, naive), 6),
                                "causal_vs_fresh": round(fresh_diff, 6)}

    some = dialogues[:vote_dialogues]
    # estimators: expected over a 3-prompt bank versus N sampled votes over the same bank
    out["estimators"] = {**estimators(teacher, task, load_bank(VOTE_BANK, examples), some, votes_n),
                         # the causal configuration's expected estimator: one causal pass, one prompt
                         "causal_expected_tokens_per_label": {
                             "in_process_kv_reuse": round(causal_tok / n, 1),
                             "api_style": round(sum(r["prompt_tokens"] for r in causal) / n, 1)}}
    bank_votes = out["estimators"]["votes_n30_tokens_per_label"]
    out["estimators"]["causal_expected_over_votes_n30"] = {
        key: round(out["estimators"]["causal_expected_tokens_per_label"][key] / bank_votes[key], 4)
        for key in bank_votes}
    # and on this configuration's own prompt: one forward pass against N votes of the same prompt
    out["own_prompt_estimators"] = estimators(teacher, task, bank, some, votes_n)
    if compare_inexact:
        out["inexact_kernels"] = inexact(model, prompt, dialogues, task, examples, (naive_s, reuse_s, causal_s))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dialogues", type=int, default=20)
    parser.add_argument("--vote-dialogues", type=int, default=3)
    parser.add_argument("--votes", type=int, default=30, help="real generated votes per label (scaled to 30)")
    parser.add_argument("--compare-inexact", action="store_true",
                        help="also run the modes with llama.cpp's repacked kernels and short batches (speed, drift)")
    parser.add_argument("--configs", nargs="*", default=["smollm2-135m:choice_names@v1", "gemma3-270m:choice_names@v1"],
                        help="model:prompt pairs")
    parser.add_argument("--keep-others", action="store_true",
                        help="keep the configurations already in the result file that this run does not measure")
    args = parser.parse_args()
    task, dialogues, examples = load_set("dailydialog_acts", "test", args.dialogues)
    result = {"dataset": "DailyDialog test", "dialogues": len(dialogues), "configurations": {}}
    previous = RESULTS / "labeling_cost.json"
    if args.keep_others and previous.exists():
        kept = json.loads(previous.read_text())
        if kept.get("dialogues") != len(dialogues):
            sys.exit(f"--keep-others: {previous} measured {kept.get('dialogues')} dialogues, this run {len(dialogues)}")
        result["configurations"] = {k: {**v, "command": kept["command"]} if "command" not in v else v
                                    for k, v in kept["configurations"].items() if k not in args.configs}
    for config in args.configs:
        model, prompt = config.split(":")
        if not is_installed(MODELS[model]):
            result["configurations"][config] = {"skipped": "not installed"}
            continue
        result["configurations"][config] = measure(model, prompt, dialogues, task, examples, args.vote_dialogues,
                                                     args.votes, args.compare_inexact)
        print(config, result["configurations"][config]["tokens_per_label"], flush=True)
    write_result("labeling_cost", result)


if __name__ == "__main__":
    main()
