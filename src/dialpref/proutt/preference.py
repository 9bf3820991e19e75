"""Reasoning traces and the chosen / rejected rule (tau_high, tau_low).

A trace is what the student learns to write: the intent tree, the category
reasoning, the two views and four predictions. Which trace is chosen depends
on how close the teacher's original predictions came to the real next turn
(top_sim, the best of the four scores):

- top_sim >= tau_high: the original is chosen; a negative (the gold view
  revised toward two wrong paths, with a random other category's reasoning)
  is rejected;
- tau_low <= top_sim < tau_high: the original revised toward the gold paths is
  chosen, the negative rejected;
- top_sim < tau_low: the revised trace is chosen, the unrevised original rejected.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Literal

from dialpref.proutt.stages import render

Band = Literal["high", "mid", "low"]


@dataclass(frozen=True)
class PreferenceConfig:
    """Where a sample's top similarity puts it. Thresholds from the ProUtt paper."""

    tau_high: float = 0.8
    tau_low: float = 0.3

    def __post_init__(self) -> None:
        if not 0.0 <= self.tau_low <= self.tau_high <= 1.0:
            raise ValueError(f"need 0 <= tau_low <= tau_high <= 1, got {self.tau_low} and {self.tau_high}")

    def band(self, top_sim: float) -> Band:
        if top_sim >= self.tau_high - 1e-9:
            return "high"
        if top_sim >= self.tau_low - 1e-9:
            return "mid"
        return "low"


def needs(band: Band) -> tuple[bool, bool]:
    """(revision, negative): which extra stages a band needs."""
    return band in ("mid", "low"), band in ("high", "mid")


@dataclass(frozen=True)
class ViewTrace:
    reasoning: str
    path: str
    predictions: tuple[str, ...]

    def text(self) -> str:
        return f"{self.reasoning.strip()} (path: {self.path})"


@dataclass(frozen=True)
class Trace:
    tree: dict[str, dict[str, str]]
    category: str
    category_reason: str
    mining: ViewTrace
    exploration: ViewTrace

    @property
    def predictions(self) -> list[str]:
        return [*self.mining.predictions, *self.exploration.predictions]

    def with_view(self, view: str, revised: ViewTrace) -> "Trace":
        return replace(self, **{"mining" if view == "Mining" else "exploration": revised})

    def text(self, *, with_tree: bool = True) -> str:
        """The assistant message the student learns: a think block, then four <predict> lines.
        `with_tree=False` leaves the intent tree out (the paper's "without intent tree" ablation)."""
        tree = json.dumps(self.tree, ensure_ascii=False) if with_tree else ""
        return render("trace.jinja", tree=tree, category=self.category,
                      category_reason=self.category_reason.strip(), mining=self.mining.text(),
                      exploration=self.exploration.text(), predictions=self.predictions)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Trace":
        views = {k: ViewTrace(data[k]["reasoning"], data[k]["path"], tuple(data[k]["predictions"]))
                 for k in ("mining", "exploration")}
        return cls(tree=data["tree"], category=data["category"], category_reason=data["category_reason"], **views)


def choose(band: Band, original: Trace, revised: Trace | None, negative: Trace | None) -> tuple[Trace, Trace, str]:
    """(chosen, rejected, which rule) for a band; the traces a band needs must be given."""
    if band == "high":
        assert negative is not None
        return original, negative, "original > negative"
    if band == "mid":
        assert revised is not None and negative is not None
        return revised, negative, "revised > negative"
    assert revised is not None
    return revised, original, "revised > original"
