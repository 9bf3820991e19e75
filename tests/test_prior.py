"""Label-prior correction: dividing out a biased prior flips the argmax where the evidence says so."""

import math

from dialpref.data.schema import Dialogue
from dialpref.label.prior import apply_prior, content_free_prior, correct, unlabelled_prior
from dialpref.label.tasks import BUILTIN


def test_correction_removes_a_constant_bias():
    prior = {"a": 0.8, "b": 0.2}
    # both rows say "a" raw, but the second is less "a" than the prior expects
    rows = [{"gold": "a", "scores": {"a": 0.9, "b": 0.1}, "predicted": "a"},
            {"gold": "b", "scores": {"a": 0.6, "b": 0.4}, "predicted": "a"}]
    fixed = apply_prior(rows, prior, "test")
    assert [r["predicted"] for r in fixed] == ["a", "b"]
    assert fixed[1]["scores_raw"] == rows[1]["scores"] and fixed[1]["prior"]["kind"] == "test"
    assert all(math.isclose(sum(r["scores"].values()), 1.0) for r in fixed)
    assert math.isclose(correct({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5})["a"], 0.5)


def test_unlabelled_prior_is_the_mean_and_skips_failed_rows():
    rows = [{"scores": {"a": 1.0, "b": 0.0}}, {"scores": {"a": 0.5, "b": 0.5}}, {"scores": None}]
    assert unlabelled_prior(rows, ["a", "b"]) == {"a": 0.75, "b": 0.25}


def test_content_free_prior_with_the_embedded_teacher(smollm2):
    dialogue = Dialogue(id="d", turns=[{"speaker": "A", "role": "user", "text": "Shall we go out tonight?"},
                                       {"speaker": "B", "role": "assistant", "text": "Sure, where to?"}])
    prior = content_free_prior(smollm2, BUILTIN["dialogue_act"], [dialogue])
    assert set(prior) == set(BUILTIN["dialogue_act"].classes)
    assert math.isclose(sum(prior.values()), 1.0, rel_tol=1e-9)
    assert max(prior.values()) > 0.3  # a small model's answer prior is far from uniform
