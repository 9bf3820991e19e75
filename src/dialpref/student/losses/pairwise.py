"""The adaptive-margin pairwise loss of arXiv 2503.05620 over intra-dialogue pairs.

    loss = KL( 1[y_i > y_j] || sigmoid( (f(x_i) - f(x_j)) - alpha * (S_i - S_j) ) )

For each class c (one-vs-rest) and each pair whose teacher scores S differ, the student's score for the
higher-scored window must exceed the other's by a margin that grows with the teacher's confidence gap.
With a hard target the KL is the binary cross-entropy, softplus(-(delta_f - alpha * delta_S)).
f is the student's log-probability of c (`score="log_softmax"`, so pretraining shapes the same quantity
the gold fine-tune's cross-entropy does) or its raw logit.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from dialpref.student.pairs import pair_indices


class AdaptiveMarginPairwiseLoss(nn.Module):
    """The paper's loss, in sentence-transformers' shape (a module with `get_config_dict`): pairs come from one
    dialogue only (`pair_mode="intra"`), where a teacher's bias is shared and its order is what carries
    information; `min_gap` drops pairs the teacher cannot tell apart, `max_pairs_per_dialogue` bounds the
    quadratic count of a long dialogue."""

    def __init__(self, alpha: float = 0.5, pair_mode: str = "intra", max_pairs_per_dialogue: int | None = None,
                 min_gap: float = 0.05, score: str = "log_softmax", seed: int = 0) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], not {alpha}")
        if score not in ("log_softmax", "logit"):
            raise ValueError(f"score must be 'log_softmax' or 'logit', not {score!r}")
        self.alpha, self.pair_mode, self.max_pairs_per_dialogue = alpha, pair_mode, max_pairs_per_dialogue
        self.min_gap, self.score, self.seed = min_gap, score, seed
        self.generator = torch.Generator().manual_seed(seed)
        self.last_pairs = 0  # pairs in the last batch, for logging

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """logits [n, C]; targets: teacher scores S [n, C]; groups: dialogue index of each window [n]."""
        if groups is None:
            raise ValueError("the pairwise loss needs each window's dialogue (groups)")
        f = F.log_softmax(logits, dim=-1) if self.score == "log_softmax" else logits
        i, j, c = pair_indices(targets, groups, self.pair_mode, self.max_pairs_per_dialogue, self.min_gap,
                               self.generator)
        self.last_pairs = len(i)
        if len(i) == 0:
            return logits.sum() * 0.0  # no informative pair in this batch: no gradient, no crash
        margin = self.alpha * (targets[i, c] - targets[j, c])
        return F.softplus(-((f[i, c] - f[j, c]) - margin)).mean()

    def get_config_dict(self) -> dict:
        return {"alpha": self.alpha, "pair_mode": self.pair_mode, "max_pairs_per_dialogue": self.max_pairs_per_dialogue,
                "min_gap": self.min_gap, "score": self.score, "seed": self.seed}
