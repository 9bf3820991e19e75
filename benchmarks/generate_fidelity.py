"""Why generated votes can disagree with the option distribution they are meant to sample.

The votes estimator can draw its answers two ways: by real generation under a
grammar that allows only the options (`sampler="generate"`), or from the
option distribution of one forward pass (`sampler="distribution"`, which is
what `expected` averages). For Qwen2.5-Coder-1.5B and SmolLM2 the two agree;
for Gemma-3-270M base they do not. This script measures, on the same choice
questions, for each teacher:

- `expected`: the whole options' first tokens (bare and after a space),
  renormalised: what the expected estimator and the drawn votes use;
- `grammar_first_step`: the mass on every token the option grammar allows at
  the first step (any prefix of an option: "in", "d", "c", ...), grouped by
  the options it can lead to (a prefix shared by k options is split k ways):
  what generation actually samples from at its first step;
- `option_mass`: the share of the whole vocabulary's probability that falls on
  the options' first tokens (how much the model wanted to answer at all);
- `generated`: the answers of `--samples` real generations per question.

Run: python benchmarks/generate_fidelity.py --teachers gemma3-270m qwen2.5-coder-1.5b
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

import numpy as np

from _common import write_result
from _labelling import load_set
from dialpref.label.bank import load_bank
from dialpref.label.scoring import match_answer, query_distribution, utterance_queries
from dialpref.teachers.base import ChatRequest
from dialpref.teachers.llamacpp import LlamaCppTeacher


def next_token_probs(teacher: LlamaCppTeacher) -> np.ndarray:
    """The softmax over the whole vocabulary at the last evaluated position."""
    logits = np.ctypeslib.as_array(teacher.llm._ctx.get_logits(), shape=(teacher.llm.n_vocab(),))
    p = np.exp(logits.astype(np.float64) - logits.max())
    return p / p.sum()


def grammar_first_step(teacher: LlamaCppTeacher, p: np.ndarray, options: list[str]) -> tuple[dict[str, float], float]:
    """Option shares of the grammar-allowed first tokens under next-token probabilities p, and their total mass."""
    shares = dict.fromkeys(options, 0.0)
    for token, text in enumerate(_vocabulary(teacher)):
        owners = [o for o in options if text and o.startswith(text)]
        for o in owners:
            shares[o] += p[token] / len(owners)
    allowed = sum(shares.values())
    return {o: v / allowed for o, v in shares.items()}, float(allowed)


_VOCAB: dict[int, list[str]] = {}


def _vocabulary(teacher: LlamaCppTeacher) -> list[str]:
    key = id(teacher)
    if key not in _VOCAB:
        _VOCAB[key] = [teacher.llm.detokenize([i]).decode("utf-8", "replace") for i in range(teacher.llm.n_vocab())]
    return _VOCAB[key]


def measure(spec: str, dataset: str, dialogues: int, questions: int, samples: int) -> dict:
    task, dials, examples = load_set(dataset, "test", dialogues)
    teacher = LlamaCppTeacher(spec, n_ctx=4096)
    bank = load_bank("choice_names@v1", examples)
    prompt = bank.prompts[0]
    shots = bank.shots_for(prompt, task)
    per_question = []
    for d in dials:
        for i in range(len(d.turns)):
            if len(per_question) >= questions:
                break
            query = utterance_queries(prompt, task, d, i, shots)[0]
            options = list(query.options)
            expected, _, _ = query_distribution(teacher, query)  # leaves the logits of the answer position
            p = next_token_probs(teacher)
            first, allowed = grammar_first_step(teacher, p, options)
            ids = teacher.option_token_ids(options)
            option_mass = float(sum(p[t] for toks in ids.values() for t in toks))
            counts: Counter[str] = Counter()
            for s in range(samples):
                out = teacher.complete(ChatRequest.make(query.messages, choices=query.options, temperature=1.0,
                                                        top_k=40, top_p=0.95, max_tokens=8, seed=s,
                                                        sample_index=s))
                counts[match_answer(out.text, options) or "unparseable"] += 1
            generated = {o: counts[o] / samples for o in options}
            per_question.append({"dialogue_id": d.id, "turn_index": i, "expected": _r(expected),
                                 "grammar_first_step": _r(first), "grammar_allowed_mass": round(allowed, 6),
                                 "option_mass": round(option_mass, 6), "generated": _r(generated),
                                 "unparseable": counts["unparseable"]})
            print(spec, dataset, d.id, i, "expected", _r(expected), "first step", _r(first),
                  "generated", _r(generated), flush=True)

    def gap(a: str, b: str) -> float:
        return round(float(np.mean([abs(q[a][o] - q[b][o]) for q in per_question for o in q[a]])), 4)

    return {"questions": len(per_question), "samples_per_question": samples,
            "mean_abs_diff": {"generated_vs_expected": gap("generated", "expected"),
                              "generated_vs_grammar_first_step": gap("generated", "grammar_first_step"),
                              "expected_vs_grammar_first_step": gap("expected", "grammar_first_step")},
            "median_option_mass": round(float(np.median([q["option_mass"] for q in per_question])), 4),
            "per_question": per_question}


def _r(d: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 4) for k, v in d.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teachers", nargs="+", default=["gemma3-270m", "smollm2-135m"])
    parser.add_argument("--datasets", nargs="+", default=["dailydialog_acts", "meld_sentiment"])
    parser.add_argument("--dialogues", type=int, default=3)
    parser.add_argument("--questions", type=int, default=12, help="choice questions per teacher and dataset")
    parser.add_argument("--samples", type=int, default=30, help="generations per question")
    args = parser.parse_args(argv)
    results = {spec: {ds: measure(spec, ds, args.dialogues, args.questions, args.samples) for ds in args.datasets}
               for spec in args.teachers}
    summary = {spec: {ds: r["mean_abs_diff"] | {"median_option_mass": r["median_option_mass"]}
                      for ds, r in by.items()} for spec, by in results.items()}
    path = write_result("generate_fidelity", {"prompt": "choice_names@v1 (first prompt)", "summary": summary,
                                              "teachers": results})
    for spec, by in summary.items():
        for ds, s in by.items():
            print(spec, ds, s)
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
