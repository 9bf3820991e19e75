"""The estimators' arithmetic: reading answers, votes to shares, sampling from an answer distribution."""

import random
from collections import Counter

import pytest

from dialpref.label.scoring import ScoringConfig, _schedule, draw, match_answer, scores_at, votes_to_scores


def test_answers_are_matched_strictly_then_loosely():
    options = ["inform", "question", "directive", "commissive"]
    assert match_answer(" inform", options) == "inform"
    assert match_answer('"Question".', options) == "question"
    assert match_answer("directive - because it asks", options) == "directive"
    assert match_answer("I think it is a statement", options) is None


def test_votes_become_shares_and_abstentions_are_skipped():
    votes = [{"classes": ["a"]}, {"classes": ["a", "b"]}, {"classes": []}, {"classes": None}]
    shares, valid = votes_to_scores(votes, ["a", "b", "c"])
    assert valid == 2 and shares == {"a": 0.75, "b": 0.25, "c": 0.0}
    assert votes_to_scores([{"classes": None}], ["a", "b"]) == ({"a": 0.5, "b": 0.5}, 0)
    row = {"votes": [{"classes": ["a"]}, {"classes": ["b"]}, {"classes": ["b"]}]}
    assert scores_at(row, 1, ["a", "b"]) == {"a": 1.0, "b": 0.0}  # the ensemble of size 1 is the first vote
    assert scores_at(row, 3, ["a", "b"])["b"] == pytest.approx(2 / 3)


def test_round_robin_schedule_spreads_votes_over_prompts():
    schedule = _schedule(["p", "q", "r"], 7)
    assert [(p, s) for _, p, s in schedule] == [("p", 0), ("q", 0), ("r", 0), ("p", 1), ("q", 1), ("r", 1), ("p", 2)]


def test_draw_follows_the_distribution_and_the_sampler_settings():
    probs = {"a": 0.6, "b": 0.3, "c": 0.1}
    rng = random.Random(0)
    counts = Counter(draw(probs, rng, 1.0, 40, 1.0) for _ in range(20000))
    assert counts["a"] / 20000 == pytest.approx(0.6, abs=0.02) and counts["c"] / 20000 == pytest.approx(0.1, abs=0.01)
    assert {draw(probs, rng, 1.0, 1, 1.0) for _ in range(50)} == {"a"}  # top-k 1 is greedy
    assert {draw(probs, rng, 1.0, 40, 0.85) for _ in range(500)} == {"a", "b"}  # top-p cuts the tail
    assert draw(probs, rng, 0.0, 40, 1.0) == "a"


def test_config_is_checked():
    with pytest.raises(ValueError, match="estimator"):
        ScoringConfig(estimator="mean")
    with pytest.raises(ValueError, match="at least 1"):
        ScoringConfig(estimator="votes", votes=0)
