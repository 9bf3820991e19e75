"""Label-prior correction: dividing out a biased prior flips the argmax where the evidence says so."""

import math

from dialpref.data.schema import Dialogue
from dialpref.label.bank import load_bank
from dialpref.label.prior import apply_priors, content_free_prior, correct, estimate_priors, unlabelled_prior
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


def test_content_free_prior_with_the_embedded_teacher(smollm2):
    dialogue = Dialogue(id="d", turns=[{"speaker": "A", "role": "user", "text": "Shall we go out tonight?"},
                                       {"speaker": "B", "role": "assistant", "text": "Sure, where to?"}])
    task = BUILTIN["dialogue_act"]
    prior = content_free_prior(smollm2, task, load_bank("choice_names@v1").prompts[0], [dialogue])
    assert set(prior) == set(task.classes)
    assert math.isclose(sum(prior.values()), 1.0, rel_tol=1e-9)
    assert max(prior.values()) > 0.3  # a small model's answer prior is far from uniform
