"""Label-prior correction: dividing out a biased prior flips the argmax where the evidence says so."""

import math

from dialpref.data.schema import Dialogue
from dialpref.label.bank import load_bank
from dialpref.label.causal import label_causal
from dialpref.label.prior import (apply_priors, causal_content_free_prior, content_free_prior, correct,
                                  em_class_frequencies, em_prior, estimate_priors, unlabelled_prior)
from dialpref.label.tasks import TaskSpec, BUILTIN

TASK = TaskSpec("t", "binary", {"a": "first", "b": "second"})


def _row(gold, dist, estimator="expected"):
    return {"gold": gold, "per_prompt": {"p@1": dist}, "scores": dist, "predicted": max(dist, key=dist.get),
            "estimator": estimator, "errors": [], "votes": []}


def test_correction_removes_a_constant_bias():
    prior = {"a": 0.8, "b": 0.2}
    # both rows say "a" raw, but the second is less "a" than the prior expects
    rows = [_row("a", {"a": 0.9, "b": 0.1}), _row("b", {"a": 0.6, "b": 0.4})]
    fixed = apply_priors(rows, {"p@1": prior}, "test", TASK)
    assert [r["predicted"] for r in fixed] == ["a", "b"]
    assert fixed[1]["per_prompt_raw"] == rows[1]["per_prompt"] and fixed[1]["prior"]["kind"] == "test"
    assert all(math.isclose(sum(r["scores"].values()), 1.0) for r in fixed)
    assert math.isclose(correct({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5})["a"], 0.5)


def test_unlabelled_prior_is_the_mean_and_skips_failed_rows():
    rows = [_row("a", {"a": 1.0, "b": 0.0}), _row("a", {"a": 0.5, "b": 0.5}),
            {"per_prompt": {"p@1": None}}]
    assert unlabelled_prior(rows, "p@1", ["a", "b"]) == {"a": 0.75, "b": 0.25}
    assert estimate_priors("unlabelled", rows[:2], TASK) == {"p@1": {"a": 0.75, "b": 0.25}}


def test_em_recovers_class_frequencies_from_unlabelled_posteriors():
    # a labeller that puts 0.6 on the true class and 0.2 on each other one; true frequencies 0.6 / 0.3 / 0.1
    # give observed answers 0.44 / 0.32 / 0.24 (= 0.4 pi + 0.2), which is all EM sees
    classes = ["a", "b", "c"]
    looks = {y: {c: 0.6 if c == y else 0.2 for c in classes} for y in classes}
    dists = [looks["a"]] * 44 + [looks["b"]] * 32 + [looks["c"]] * 24
    pi = em_class_frequencies(dists, classes)
    assert abs(pi["a"] - 0.6) < 0.01 and abs(pi["b"] - 0.3) < 0.01 and abs(pi["c"] - 0.1) < 0.01
    assert em_class_frequencies([], classes) == {c: 1 / 3 for c in classes}


def test_content_free_em_divides_out_the_bias_then_favours_the_common_class():
    # the teacher leans to "b" (its content-free answer); with that divided out, the evidence says "a" is the
    # common class, so EM gives a borderline row to "a" where the plain content-free correction leaves it at "b"
    bias = {"a": 0.3, "b": 0.7}
    rows = [_row("a", {"a": 0.6, "b": 0.4})] * 6 + [_row("b", {"a": 0.1, "b": 0.9})] * 2 + \
           [_row("?", {"a": 0.28, "b": 0.72})]
    plain = apply_priors(rows, {"p@1": bias}, "content_free", TASK)
    em = apply_priors(rows, {"p@1": em_prior(rows, "p@1", ["a", "b"], bias)}, "content_free_em", TASK)
    assert plain[-1]["predicted"] == "b" and em[-1]["predicted"] == "a"
    assert all(math.isclose(sum(r["scores"].values()), 1.0) for r in em)


def test_content_free_em_prior_for_causal_rows_with_the_embedded_teacher(smollm2):
    task = BUILTIN["dialogue_act"]
    dialogue = Dialogue(id="d", turns=[{"speaker": "A", "role": "user", "text": "Shall we go out tonight?"},
                                       {"speaker": "B", "role": "assistant", "text": "Sure, where to?"},
                                       {"speaker": "A", "role": "user", "text": "The new place on Elm Street."}])
    rows = label_causal(smollm2, task, dialogue)
    bias = causal_content_free_prior(smollm2, task, [dialogue], max_dialogues=1)
    assert math.isclose(sum(bias.values()), 1.0)
    priors = estimate_priors("content_free_em", rows, task, smollm2, None, [dialogue])
    assert set(priors) == {"causal@v1"}
    assert priors["causal@v1"] == em_prior(rows, "causal@v1", task.class_names, bias)
    fixed = apply_priors(rows, priors, "content_free_em", task)
    assert all(math.isclose(sum(r["scores"].values()), 1.0) for r in fixed)


def test_content_free_prior_with_the_embedded_teacher(smollm2):
    dialogue = Dialogue(id="d", turns=[{"speaker": "A", "role": "user", "text": "Shall we go out tonight?"},
                                       {"speaker": "B", "role": "assistant", "text": "Sure, where to?"}])
    task = BUILTIN["dialogue_act"]
    prior = content_free_prior(smollm2, task, load_bank("choice_names@v1").prompts[0], [dialogue])
    assert set(prior) == set(task.classes)
    assert math.isclose(sum(prior.values()), 1.0, rel_tol=1e-9)
    assert max(prior.values()) > 0.3  # a small model's answer prior is far from uniform
