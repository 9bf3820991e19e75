"""Cross-entropy on gold labels: the fine-tune phase, and the fine-tune-only baseline."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class GoldCrossEntropyLoss(nn.Module):
    """Gold labels after teacher pretraining (and alone, for the fine-tune-only baseline); `groups` is taken
    and ignored so that every loss has the same call."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """logits [n, C]; targets: gold class indices [n]."""
        return F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)

    def get_config_dict(self) -> dict:
        return {"label_smoothing": self.label_smoothing}
