"""Simulated teachers made from gold labels, for testing the method where the real teacher is too weak.

Noise model (documented, the paper's H2 setting: a teacher whose errors are partly shared within a
dialogue). For an utterance with gold class y in dialogue d:

1. class-conditional flip: with probability `flip`, the teacher's favoured class is another class, drawn
   in proportion to the class frequencies (a weak teacher drifts toward frequent classes);
2. logits z = `strength` * onehot(favoured) + b_d + e, with a per-dialogue bias shift b_d ~ N(0, bias^2)
   per class (shared by every utterance of the dialogue) and per-utterance noise e ~ N(0, noise^2);
3. S = softmax(z).

The bias shift moves all of a dialogue's scores together: it hurts a student fit to S pointwise, while a
comparison of two utterances of the same dialogue cancels it. Always labelled as simulated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class NoiseModel:
    """A teacher's failure modes as numbers (see above), so a table can say how a method fares under a
    teacher of known quality, which a real teacher never tells."""

    flip: float = 0.2
    bias: float = 1.0
    noise: float = 0.5
    strength: float = 2.0

    def as_dict(self) -> dict:
        return asdict(self)


LEVELS = {"low": NoiseModel(flip=0.2, bias=1.0), "high": NoiseModel(flip=0.3, bias=1.5)}


def simulate_scores(gold: Sequence[int], dialogue_ids: Sequence[str], classes: int, model: NoiseModel,
                    seed: int = 0) -> np.ndarray:
    """S [n, classes] from gold class indices under `model`."""
    rng = np.random.default_rng(seed)
    gold = np.asarray(gold)
    freq = np.bincount(gold, minlength=classes).astype(float) + 1.0
    favoured = gold.copy()
    for k in np.nonzero(rng.random(len(gold)) < model.flip)[0]:
        weights = freq.copy()
        weights[gold[k]] = 0.0
        favoured[k] = rng.choice(classes, p=weights / weights.sum())
    bias = {d: rng.normal(0.0, model.bias, classes) for d in dict.fromkeys(dialogue_ids)}
    z = model.strength * np.eye(classes)[favoured] + np.stack([bias[d] for d in dialogue_ids])
    z += rng.normal(0.0, model.noise, z.shape)
    z -= z.max(1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(1, keepdims=True)


def simulate_slot_scores(gold: np.ndarray, dialogue_ids: Sequence[str], bounds: Sequence[tuple[int, int]],
                         model: NoiseModel, seed: int = 0) -> np.ndarray:
    """S [n, outputs] for a slots task from gold value indices [n, slots] (-100 where the gold value is not
    in the slot's list: taken as `none`, index 0): the noise model above, slot by slot. Values are confused in
    proportion to their frequency, so a flipped change mostly becomes `none` (a missed change) and a flipped
    `none` a frequent value (a spurious one); each dialogue's bias is shared by its turns, per slot."""
    parts = []
    for k, (a, b) in enumerate(bounds):
        column = np.where(gold[:, k] < 0, 0, gold[:, k])
        parts.append(simulate_scores(column, dialogue_ids, b - a, model, seed=seed + k))
    return np.concatenate(parts, axis=1)
