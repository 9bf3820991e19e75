"""The paper's pointwise baseline: each window on its own, fit to the teacher's soft scores.

Cross-entropy against the soft distribution S (the KL to S up to a constant): the student learns the
teacher's scores directly, with no comparison between windows.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class SoftLabelPointwiseLoss(nn.Module):
    """The baseline the pairwise loss is measured against: the same scores, without the comparison."""

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, not {temperature}")
        self.temperature = temperature

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """logits [n, C]; targets: teacher scores S [n, C] (rows sum to 1)."""
        soft = targets / targets.sum(-1, keepdim=True).clamp_min(1e-8)
        return -(soft * F.log_softmax(logits / self.temperature, dim=-1)).sum(-1).mean()

    def get_config_dict(self) -> dict:
        return {"temperature": self.temperature}
