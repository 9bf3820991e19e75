"""Windows, pairs, losses and the simulated teacher: the student's pieces, without a model."""

import numpy as np
import pytest
import torch

from dialpref.data.schema import Dialogue, Turn
from dialpref.data.windows import CONTEXT_SEP, dialogue_windows
from dialpref.student.losses import AdaptiveMarginPairwiseLoss, GoldCrossEntropyLoss, SoftLabelPointwiseLoss
from dialpref.student.pairs import pair_indices
from dialpref.student.simulated import NoiseModel, simulate_scores


def dialogue(n=5, did="d"):
    return Dialogue(id=did, turns=[Turn(speaker="A" if i % 2 == 0 else "B", role="user" if i % 2 == 0 else "assistant",
                                        text=f"utterance {i}") for i in range(n)])


def test_windows_show_k_previous_turns_with_speakers_and_never_the_future():
    ws = dialogue_windows(dialogue(5), context_turns=2)
    assert [w.turn_index for w in ws] == [0, 1, 2, 3, 4]
    assert ws[0].context == "" and ws[0].text == "A: utterance 0"
    assert ws[3].context == CONTEXT_SEP.join(["B: utterance 1", "A: utterance 2"])
    assert all("utterance 4" not in w.context for w in ws)
    assert dialogue_windows(dialogue(5), context_turns=0)[4].context == ""
    users = dialogue_windows(dialogue(5), context_turns=1, roles=["user"])
    assert [w.turn_index for w in users] == [0, 2, 4] and users[1].context == "B: utterance 1"
    with pytest.raises(ValueError, match="context_turns"):
        dialogue_windows(dialogue(3), context_turns=-1)


def scores_and_groups():
    torch.manual_seed(0)
    scores = torch.rand(12, 3)
    groups = torch.tensor([0] * 4 + [1] * 5 + [2] * 3)
    return scores, groups


def test_intra_pairs_stay_in_one_dialogue_and_point_from_higher_to_lower_score():
    scores, groups = scores_and_groups()
    i, j, c = pair_indices(scores, groups, "intra", min_gap=0.1)
    assert len(i) > 0
    assert bool((groups[i] == groups[j]).all())
    assert bool((scores[i, c] > scores[j, c] + 0.1).all())
    # every qualifying pair is there: per dialogue and class, count by brute force
    expected = sum(1 for a in range(12) for b in range(12) for k in range(3)
                   if groups[a] == groups[b] and scores[a, k] > scores[b, k] + 0.1)
    assert len(i) == expected


def test_caps_and_cross_pairs_match_the_intra_budget():
    scores, groups = scores_and_groups()
    gen = torch.Generator().manual_seed(1)
    i, j, c = pair_indices(scores, groups, "intra", max_per_dialogue=2, generator=gen)
    counts = torch.zeros(3, 3, dtype=torch.long).index_put_((groups[i], c), torch.ones_like(i), accumulate=True)
    assert int(counts.max()) <= 2
    intra = pair_indices(scores, groups, "intra")
    cross = pair_indices(scores, groups, "cross", generator=gen)
    assert bool((groups[cross[0]] != groups[cross[1]]).all())
    assert len(cross[0]) == len(intra[0])  # as many per dialogue and class (each dialogue has enough partners)
    with pytest.raises(ValueError, match="pair mode"):
        pair_indices(scores, groups, "sideways")


def test_pairwise_loss_rewards_the_teacher_order_by_the_adaptive_margin():
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    groups = torch.tensor([0, 0])
    agree = torch.tensor([[3.0, -3.0], [-3.0, 3.0]], requires_grad=True)
    disagree = torch.tensor([[-3.0, 3.0], [3.0, -3.0]])
    loss = AdaptiveMarginPairwiseLoss(alpha=0.5, min_gap=0.0)
    assert loss(agree, scores, groups) < loss(disagree, scores, groups)
    assert loss.last_pairs == 2  # one pair per class
    # a bigger alpha asks for a bigger margin: the same logits cost more
    assert AdaptiveMarginPairwiseLoss(alpha=1.0, min_gap=0.0)(agree, scores, groups) > \
        AdaptiveMarginPairwiseLoss(alpha=0.0, min_gap=0.0)(agree, scores, groups)
    # the exact value for one pair with raw logits: softplus(-((f_i - f_j) - alpha (S_i - S_j)))
    one = AdaptiveMarginPairwiseLoss(alpha=0.5, min_gap=0.0, score="logit")
    value = one(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[0.8, 0.2], [0.8, 0.2]]) * torch.tensor(
        [[1.0, 1.0], [0.5, 1.0]]), groups)
    assert value.item() == pytest.approx(float(torch.nn.functional.softplus(torch.tensor(-(1.0 - 0.5 * 0.4)))), 1e-5)
    loss(agree, scores, groups).backward()
    assert agree.grad[0, 0] < 0  # gradient descent raises the preferred window's score


def test_pairwise_loss_needs_dialogues_and_survives_a_batch_without_pairs():
    loss = AdaptiveMarginPairwiseLoss()
    logits = torch.zeros(2, 2, requires_grad=True)
    with pytest.raises(ValueError, match="groups"):
        loss(logits, torch.full((2, 2), 0.5))
    value = loss(logits, torch.full((2, 2), 0.5), torch.tensor([0, 0]))
    assert value.item() == 0.0 and loss.last_pairs == 0
    value.backward()
    with pytest.raises(ValueError, match="alpha"):
        AdaptiveMarginPairwiseLoss(alpha=1.5)


def test_pointwise_and_cross_entropy_losses():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    onehot = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert SoftLabelPointwiseLoss()(logits, onehot).item() == pytest.approx(
        GoldCrossEntropyLoss()(logits, torch.tensor([0, 1])).item(), 1e-6)
    soft = torch.tensor([[0.7, 0.2, 0.1]])
    at_target = SoftLabelPointwiseLoss()(soft.log(), soft)
    assert at_target < SoftLabelPointwiseLoss()(torch.zeros(1, 3), soft)  # minimised at log S


def test_simulated_teacher_follows_its_noise_model():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 4, 4000)
    dialogues = [f"d{k // 8}" for k in range(4000)]
    clean = simulate_scores(gold, dialogues, 4, NoiseModel(flip=0.0, bias=0.0, noise=0.0), seed=1)
    assert (clean.argmax(1) == gold).all() and np.allclose(clean.sum(1), 1)
    low = simulate_scores(gold, dialogues, 4, NoiseModel(flip=0.2, bias=1.0), seed=1)
    high = simulate_scores(gold, dialogues, 4, NoiseModel(flip=0.3, bias=1.5), seed=1)
    acc_low, acc_high = (low.argmax(1) == gold).mean(), (high.argmax(1) == gold).mean()
    assert 0.4 < acc_high < acc_low < 0.8
    # the bias is shared within a dialogue: scores of one dialogue move together
    shift = np.log(high) - np.log(high).mean(1, keepdims=True)
    within = np.mean([shift[k:k + 8].std(0).mean() for k in range(0, 4000, 8)])
    assert within < shift.std(0).mean()
    assert np.array_equal(high, simulate_scores(gold, dialogues, 4, NoiseModel(flip=0.3, bias=1.5), seed=1))
