"""One encoder, one head per slot, for slot tasks (dialogue state tracking).

The heads are blocks of one classification layer: output k of the model is `slot=value`, and the outputs
of a slot form a segment with its own softmax. So the student stays one `AutoModelForSequenceClassification`
(saves, loads and exports to ONNX as for the other kinds) while each slot is a classifier over its values,
trained with the same losses as the other kinds, segment by segment (`PerSlotLoss`). A head per slot rather
than a slot-conditioned input: one forward pass per turn gives every slot, where slot conditioning costs a
pass per slot; the slots of a restaurant domain share almost all of what the encoder has to read.

A new head starts from the values' own text (`init_from_values`): row `slot=value` is the encoder's feature of
"user: <value>" less the mean over the slot's values, so a turn that says a value scores it high before any
training. A food slot has 70-odd values with a few gold turns each, which a randomly started row does not
learn in a few epochs (WOZ 2.0, all gold, 2 epochs: JGA 0.03 from random rows, 0.73 from the values' text).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from dialpref.label.tasks import TaskSpec

IGNORE = -100  # a gold value the slot's values do not hold (unseen in training): no loss for that slot


def output_names(task: TaskSpec) -> list[str]:
    """The model's outputs: class names, or `slot=value` for every value of every slot."""
    if task.kind != "slots":
        return task.class_names
    return [f"{s.name}={v}" for s in task.slots for v in s.values]


def segments(task: TaskSpec) -> list[tuple[int, int]]:
    """[start, end) of each slot's outputs."""
    bounds, start = [], 0
    for slot in task.slots:
        bounds.append((start, start + len(slot.values)))
        start += len(slot.values)
    return bounds


def segment_softmax(logits: torch.Tensor, bounds: Sequence[tuple[int, int]]) -> torch.Tensor:
    return torch.cat([torch.softmax(logits[:, a:b], -1) for a, b in bounds], dim=-1)


def score_matrix(scores: Sequence[Mapping[str, Mapping[str, float]]], task: TaskSpec) -> np.ndarray:
    """Rows' nested S[slot][value] as one [n, outputs] matrix in the model's output order."""
    return np.array([[row[s.name][v] for s in task.slots for v in s.values] for row in scores], dtype=np.float32)


def gold_targets(changes: Sequence[Mapping[str, str]], task: TaskSpec) -> torch.Tensor:
    """Gold changes as value indices [n, slots]; a value outside the slot's list is IGNORE."""
    index = [{v: i for i, v in enumerate(s.values)} for s in task.slots]
    return torch.tensor([[index[k].get(change.get(s.name, "none"), IGNORE) for k, s in enumerate(task.slots)]
                         for change in changes], dtype=torch.long)


def to_changes(probs: np.ndarray, task: TaskSpec) -> list[dict[str, str]]:
    """The most probable value of each slot, per row of segment-softmaxed outputs."""
    return [{s.name: s.values[int(row[a:b].argmax())] for s, (a, b) in zip(task.slots, segments(task))}
            for row in probs]


def to_nested(probs: np.ndarray, task: TaskSpec) -> list[dict[str, dict[str, float]]]:
    return [{s.name: {v: float(p) for v, p in zip(s.values, row[a:b])} for s, (a, b) in zip(task.slots, segments(task))}
            for row in probs]


def value_text(slot_name: str, value: str) -> str:
    """What a user says to set `value`: the value itself, or for `dontcare` that any value will do."""
    if value == "dontcare":
        return f"user: any {slot_name.split('-')[-1]} is fine, i don't mind"
    return f"user: {value}"


def _output_layer(model: nn.Module) -> nn.Linear:
    """The linear layer that produces the logits (BERT's `classifier`, RoBERTa's `classifier.out_proj`, ...)."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == model.config.num_labels]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no linear layer with {model.config.num_labels} outputs")
    return layers[-1]


@torch.no_grad()
def init_from_values(model: nn.Module, tokenizer, task: TaskSpec, scale: float = 5.0, none_bias: float = 2.0) -> None:
    """Score `slot=value` by `scale` x the unit direction of the value's text feature from the mean of the
    slot's values, applied to the turn's feature less that mean (features of short texts share a large common
    part, which says nothing about the value); `none` gets a zero row
    and `none_bias`, so a turn that names no value leaves the slot alone. Works for any head architecture: the
    feature is whatever the output layer reads, caught by a forward hook."""
    layer, seen = _output_layer(model), []
    hook = layer.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0].detach()))
    was_training = model.training
    model.eval()
    try:
        for slot, (a, b) in zip(task.slots, segments(task)):
            seen.clear()
            encoded = tokenizer([value_text(slot.name, v) for v in slot.values], padding=True, return_tensors="pt")
            model(**{k: v.to(layer.weight.device) for k, v in encoded.items() if k in tokenizer.model_input_names})
            centre = seen[-1].mean(0)
            features = seen[-1] - centre
            features = scale * features / features.norm(dim=-1, keepdim=True).clamp_min(1e-6)
            for k, value in enumerate(slot.values):  # logit = row . (feature - centre): the bias takes the centre
                none = value == "none"
                layer.weight[a + k] = 0.0 if none else features[k]
                layer.bias[a + k] = none_bias if none else -float(features[k] @ centre)
    finally:
        hook.remove()
        model.train(was_training)


class PerSlotLoss(nn.Module):
    """Any student loss applied to each slot's segment of the outputs, averaged over slots. Soft targets are
    [n, outputs] (teacher scores); gold targets are value indices [n, slots] (IGNORE rows skipped)."""

    def __init__(self, loss: nn.Module, bounds: Sequence[tuple[int, int]]) -> None:
        super().__init__()
        self.loss, self.bounds = loss, list(bounds)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        parts = []
        for k, (a, b) in enumerate(self.bounds):
            if targets.dtype == torch.long:
                keep = targets[:, k] != IGNORE
                if not keep.any():
                    continue
                parts.append(self.loss(logits[keep, a:b], targets[keep, k],
                                       None if groups is None else groups[keep]))
            else:
                parts.append(self.loss(logits[:, a:b], targets[:, a:b], groups))
        return torch.stack(parts).mean() if parts else logits.sum() * 0.0

    def get_config_dict(self) -> dict:
        return {"per_slot": type(self.loss).__name__, **self.loss.get_config_dict(), "slots": len(self.bounds)}
