"""One sample through every synthesis stage, to one record with its chosen and rejected traces."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from dialpref.proutt.checks import check_content, check_scorer
from dialpref.proutt.preference import PreferenceConfig, Trace, ViewTrace, choose, needs
from dialpref.proutt.samples import HistoryBudget, NextTurnSample, TargetMode, render_history, shorten
from dialpref.proutt.schemas import (CATEGORIES, CategoryReasoning, GoldCategory, GoldView, Insight, IntentTree,
                                     NegativeRevision, Revision, Scores)
from dialpref.proutt.stages import StageRunner
from dialpref.teachers.base import Teacher

DEFAULT_LANGUAGE = "the language of the conversation"


@dataclass
class SynthConfig:
    """How samples are drawn and synthesized.

    Samples: `mode` ('last' user turn per conversation, as the reference, or 'all' after the first
    round), `max_negatives` other user turns kept as references for the negative trace.
    History: the `HistoryBudget` rule, shared with training and prediction.
    Teacher calls: `retries` per stage after an invalid answer, `temperature`, `seed`.
    Preference: `tau_high` / `tau_low` (ProUtt's 0.8 / 0.3).
    Language: what the predictions are written in (pass 'Chinese' for CrossWOZ).
    Checks: reject degenerate samples with their reason (`dialpref.proutt.checks`: a tree copied from the
    prompt, placeholder predictions, the wrong language, a scorer that rates a negative as high as the real
    turn, which costs one more scoring call for samples above the low band); off keeps every sample.
    """

    mode: TargetMode = "last"
    max_negatives: int = 2
    history: HistoryBudget = field(default_factory=HistoryBudget)
    retries: int = 2
    temperature: float = 0.3
    seed: int = 0
    tau_high: float = 0.8
    tau_low: float = 0.3
    language: str = DEFAULT_LANGUAGE
    checks: bool = True

    def __post_init__(self) -> None:
        self.preference  # noqa: B018 - rejects impossible thresholds when the config is made

    @property
    def preference(self) -> PreferenceConfig:
        return PreferenceConfig(self.tau_high, self.tau_low)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_seed(sample_id: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()[:4], "big")


def _negative_top(runner: StageRunner, sample: NextTurnSample, config: SynthConfig, top_sim: float,
                  predictions: list[str]) -> float | None:
    """The predictions' best score against one of the user's other turns (the `blind_scorer` check), where
    the real turn's score lifts the sample out of the low band; None where it is not asked."""
    if not config.checks or not sample.negatives or top_sim < config.tau_low:
        return None
    target = shorten(sample.negatives[0], config.history.max_target_chars)
    top = runner.run("negative_scoring", Scores, target=target, predictions=predictions).top_sim
    check_scorer(top_sim, top, config.tau_low)
    return top


def _band_traces(runner: StageRunner, sample: NextTurnSample, config: SynthConfig, band: str, original: Trace,
                 gold, reasons, gold_view, insight, tree_json: str, seed: int):
    """The revised and the negative trace the band needs (None where it needs none), and the stage answers."""
    view = gold_view.view
    view_reasoning = (insight.mining if view == "Mining" else insight.exploration).reasoning
    want_revision, want_negative = needs(band)
    revised = negative = None
    revision = negative_out = None
    if want_revision:
        paths = [str(p) for p in gold_view.paths]
        revision = runner.run("revision", Revision, tree=tree_json, category=gold.category, view=view,
                              reasoning=view_reasoning, paths=paths, language=config.language)
        revised = original.with_view(view, ViewTrace(revision.revised, " ; ".join(paths), tuple(revision.predictions)))
    if want_negative:
        negative_out = runner.run("negative", NegativeRevision, tree=tree_json, category=gold.category, view=view,
                                  reasoning=view_reasoning, negatives=[shorten(n, 300) for n in sample.negatives])
        other = random.Random(seed).choice([c for c in CATEGORIES if c != gold.category])
        wrong = " ; ".join(str(p) for p in negative_out.wrong_paths)
        negative = replace(original.with_view(view, ViewTrace(negative_out.revised, wrong,
                                                              tuple(negative_out.predictions))),
                           category=other, category_reason=reasons.for_category(other))
    return revised, negative, revision, negative_out


def synthesize_sample(teacher: Teacher, sample: NextTurnSample, config: SynthConfig = SynthConfig()) -> dict:
    """Run the stages for `sample`; raises `StageFailed` (with the stage's raw outputs) when one fails, and
    `CheckFailed` for a degenerate sample (`config.checks`)."""
    seed = sample_seed(sample.id, config.seed)
    history = render_history(sample.context, config.history)
    runner = StageRunner(teacher, history, retries=config.retries, temperature=config.temperature, seed=seed)
    target = shorten(sample.target, config.history.max_target_chars)
    language = config.language

    # History-free first, then the history stages back to back so they share a prompt prefix.
    gold = runner.run("gold_category", GoldCategory, target=target)
    tree = runner.run("intent_tree", IntentTree).as_tree()
    tree_json = json.dumps(tree, ensure_ascii=False)
    reasons = runner.run("category_reasoning", CategoryReasoning, tree=tree_json)
    insight = runner.run("insight", Insight, tree=tree_json, category=gold.category,
                         category_reason=reasons.for_category(gold.category), language=language)
    if config.checks:
        check_content(tree, history, insight.predictions(), language, " ".join(m.content for m in sample.context))
    scores = runner.run("scoring", Scores, target=target, predictions=insight.predictions())
    negative_top = _negative_top(runner, sample, config, scores.top_sim, insight.predictions())
    gold_view = runner.run("gold_view", GoldView, tree=tree_json, target=target)

    band = config.preference.band(scores.top_sim)
    original = Trace(tree=tree, category=gold.category, category_reason=reasons.for_category(gold.category),
                     mining=ViewTrace(insight.mining.reasoning, insight.mining.path, tuple(insight.mining.predictions)),
                     exploration=ViewTrace(insight.exploration.reasoning, insight.exploration.path,
                                           tuple(insight.exploration.predictions)))
    revised, negative, revision, negative_out = _band_traces(runner, sample, config, band, original, gold, reasons,
                                                             gold_view, insight, tree_json, seed)
    chosen, rejected, rule = choose(band, original, revised, negative)

    stages = {name: record.to_dict() for name, record in runner.records.items()}
    usage = {key: sum(s[key] for s in stages.values())
             for key in ("prompt_tokens", "completion_tokens", "evaluated_prompt_tokens", "seconds")}
    return {
        "id": sample.id, "dialogue_id": sample.dialogue_id, "source": sample.source,
        "context": [m.model_dump() for m in sample.context], "target": sample.target,
        "negatives": sample.negatives, "history": history,
        "intent_tree": tree, "category_reasoning": reasons.model_dump(), "gold_category": gold.model_dump(),
        "insight": insight.model_dump(), "scores": [s.model_dump() for s in scores.scores],
        "top_sim": scores.top_sim, "negative_top_sim": negative_top, "gold_view": gold_view.model_dump(), "band": band, "rule": rule,
        "revision": revision.model_dump() if revision else None,
        "negative": negative_out.model_dump() if negative_out else None,
        "chosen": {"trace": chosen.to_dict(), "text": chosen.text()},
        "rejected": {"trace": rejected.to_dict(), "text": rejected.text()},
        "stages": stages, "usage": usage, "teacher": teacher.identity(), "config": config.to_dict(),
    }
