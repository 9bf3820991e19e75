"""Student losses, one per file, each an `nn.Module` with `forward(logits, targets, groups)` and its config."""

from dialpref.student.losses.cross_entropy import GoldCrossEntropyLoss
from dialpref.student.losses.pairwise import AdaptiveMarginPairwiseLoss
from dialpref.student.losses.pointwise import SoftLabelPointwiseLoss

LOSSES = {"pairwise": AdaptiveMarginPairwiseLoss, "pointwise": SoftLabelPointwiseLoss,
          "cross_entropy": GoldCrossEntropyLoss}

__all__ = ["AdaptiveMarginPairwiseLoss", "SoftLabelPointwiseLoss", "GoldCrossEntropyLoss", "LOSSES"]
