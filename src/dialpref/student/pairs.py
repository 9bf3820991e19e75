"""Pairs of windows for the pairwise loss: within one dialogue (the paper's), or across dialogues (ablation).

The student encodes each window of a batch once; pairs are formed afterwards from the teacher scores, so
a batch of whole dialogues yields all its pairs for the price of encoding its windows. A pair (i, j, c)
says the teacher gave window i a higher score for class c than window j, by more than `min_gap`.
"""

from __future__ import annotations

import torch

MODES = ("intra", "cross")


def pair_indices(scores: torch.Tensor, groups: torch.Tensor, mode: str = "intra", max_per_dialogue: int | None = None,
                 min_gap: float = 0.0, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """(i, j, c) index tensors with scores[i, c] > scores[j, c] + min_gap.

    intra: i and j from the same dialogue (group); cross: from different dialogues, as many per dialogue as
    intra would give, so the two samplers differ only in where the partner comes from.
    max_per_dialogue caps the pairs per dialogue and class (None: all of them).
    """
    if mode not in MODES:
        raise ValueError(f"pair mode must be one of {MODES}, not {mode!r}")
    n, classes = scores.shape
    same = groups[:, None] == groups[None, :]
    diff = scores[:, None, :] - scores[None, :, :]  # [i, j, c]
    wanted = diff > min_gap
    if mode == "intra":
        wanted &= same[:, :, None]
    else:
        wanted &= ~same[:, :, None]
    i, j, c = wanted.nonzero(as_tuple=True)
    if len(i) == 0:
        return i, j, c
    budget = max_per_dialogue
    if mode == "cross":
        # As many cross pairs per dialogue and class as it has intra candidates (the fair comparison).
        intra = (diff > min_gap) & same[:, :, None]
        per = torch.zeros(int(groups.max()) + 1, classes, dtype=torch.long)
        ii, _, cc = intra.nonzero(as_tuple=True)
        per.index_put_((groups[ii], cc), torch.ones_like(ii), accumulate=True)
        if budget is not None:
            per = per.clamp(max=budget)
        return _cap(i, j, c, groups, per, generator)
    if budget is None:
        return i, j, c
    per = torch.full((int(groups.max()) + 1, classes), budget, dtype=torch.long)
    return _cap(i, j, c, groups, per, generator)


def _cap(i, j, c, groups, per, generator):
    """Keep a random subset: at most per[group of i, c] pairs for each (dialogue of i, class)."""
    order = torch.randperm(len(i), generator=generator)
    i, j, c = i[order], j[order], c[order]
    key = groups[i] * per.shape[1] + c
    # rank of each pair within its (dialogue, class) key, in the shuffled order
    sorted_key, by_key = torch.sort(key, stable=True)
    first = torch.ones_like(sorted_key, dtype=torch.bool)
    first[1:] = sorted_key[1:] != sorted_key[:-1]
    starts = torch.cummax(torch.where(first, torch.arange(len(key)), torch.zeros_like(key)), 0).values
    rank = torch.empty_like(key)
    rank[by_key] = torch.arange(len(key)) - starts
    keep = rank < per.flatten()[key]
    return i[keep], j[keep], c[keep]
