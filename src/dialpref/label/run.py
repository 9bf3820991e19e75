"""One labelling run: dialogues in, one row per utterance out (JSONL or Parquet), plus a summary and plots.

The teacher's calls go through its cache, so a run killed midway and started
again repeats no finished call; the output is written once all rows are in
(prior correction needs them all). Rows whose teacher calls failed or whose
answers could not be read keep the reason in `errors` and are listed in the
rejects file too; they are never dropped.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from dialpref.data.rejects import Rejects
from dialpref.data.schema import Dialogue
from dialpref.evaluate import calibration_error, state_tracking
from dialpref.files import atomic_write_text
from dialpref.label import calibration
from dialpref.label.bank import Bank, load_bank
from dialpref.label.causal import PROMPT_ID as CAUSAL_PROMPT_ID, label_causal
from dialpref.rows import write_rows
from dialpref.label.state import PROMPT_ID as STATE_PROMPT_ID, label_state_dialogue
from dialpref.label.prior import PRIORS, apply_priors, apply_slot_priors, estimate_priors, slot_priors
from dialpref.label.scoring import ScoringConfig, error_kind, score_dialogue, scores_at
from dialpref.label.tasks import TaskSpec
from dialpref.teachers.base import Teacher
from dialpref.teachers.factory import is_server

MODES = ("auto", "prefix", "causal")
VOTE_CURVE = (1, 2, 5, 10, 20, 30)


def _auto_mode(server: bool, estimator: str, bank: str | None) -> str:
    """The one rule for `mode="auto"`: causal where causal mode can run (an embedded teacher, the expected
    estimator) and nothing asked for a prompt bank, else prefix."""
    return "causal" if not server and estimator == "expected" and bank is None else "prefix"


def resolve_mode(mode: str, teacher_spec: str, estimator: str = "expected", bank: str | None = None,
                 task_kind: str = "") -> str:
    """`mode` with "auto" decided for a teacher spec (the CLI and the quick start, before a teacher exists);
    a slots task is always labelled in prefix mode."""
    if mode != "auto":
        return mode
    return "prefix" if task_kind == "slots" else _auto_mode(is_server(teacher_spec), estimator, bank)


@dataclass
class LabelConfig:
    """How to label.

    bank: comma-separated built-in prompt ids or a bank YAML (default: class names).
    estimator / votes / sampler: see `dialpref.label.scoring`.
    mode: `prefix` (the whole dialogue as a shared, reused prefix), `causal` (the dialogue read once; the
    teacher sees only the past; embedded teacher), or `auto`: causal where it applies, else prefix.
    prior: divide out the teacher's label prior, estimated without gold.
    buckets: ECE buckets (the paper uses 5).
    The defaults are `dialpref label`'s (tests/test_cli.py compares them): the embedded configuration that
    did best on the dev dialogues, causal mode with the unlabelled prior.
    """

    bank: str = "choice_names@v1"
    estimator: str = "expected"
    votes: int = 10
    sampler: str = "generate"
    temperature: float = 1.0
    mode: str = "auto"
    prior: str = "unlabelled"
    buckets: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, not {self.prior!r}")
        if self.mode == "causal" and self.estimator != "expected":
            raise ValueError("causal mode gives the expected estimator only")

    def resolved(self, teacher: Teacher, task: TaskSpec | None = None) -> "LabelConfig":
        """This config with `mode="auto"` decided for this teacher (and task: a slots task is labelled in
        prefix mode, with the unlabelled prior per slot or none)."""
        if task is not None and task.kind == "slots":
            if self.mode == "causal":
                raise ValueError(f"task {task.name!r} is a slots task: it is labelled in prefix mode, not causal")
            if self.prior not in ("none", "unlabelled"):
                raise ValueError(f"task {task.name!r} is a slots task: its prior is none or unlabelled (per slot), "
                                 f"not {self.prior!r}")
            return replace(self, mode="prefix")
        if self.mode != "auto":
            return self
        bank = None if self.bank == LabelConfig.bank else self.bank  # the default bank is not a request for one
        return replace(self, mode=_auto_mode(getattr(teacher, "backend", "") == "openai", self.estimator, bank))

    def scoring(self) -> ScoringConfig:
        return ScoringConfig(estimator=self.estimator, votes=self.votes, sampler=self.sampler,
                             temperature=self.temperature, seed=self.seed)


def label_run(teacher: Teacher, task: TaskSpec, dialogues: Sequence[Dialogue], config: LabelConfig,
              output: Path, bank: Bank | None = None, source: str = "",
              on_dialogue: Callable[[Dialogue, list[dict]], None] | None = None) -> dict[str, Any]:
    """Label `dialogues`, write rows to `output`, plots and summary beside it; return the summary."""
    config = config.resolved(teacher, task)
    bank = bank if bank is not None else load_bank(config.bank)
    tokens_before = getattr(teacher, "evaluated_tokens", None)
    cache = getattr(teacher, "cache", None)
    misses_before = cache.misses if cache is not None else 0
    started = time.perf_counter()
    rows = []
    for dialogue in dialogues:
        got = label_dialogue(teacher, task, dialogue, config, bank)
        rows.extend(got)
        if on_dialogue is not None:
            on_dialogue(dialogue, got)
    seconds = time.perf_counter() - started
    computed = cache is None or cache.misses > misses_before  # a run answered wholly from the cache has no speed
    summary = finish_run(rows, task, config, output, bank, source, seconds, computed, len(dialogues), teacher,
                         dialogues)
    if tokens_before is not None:
        summary["tokens_evaluated_per_label"] = round((teacher.evaluated_tokens - tokens_before) / max(1, len(rows)), 1)
    if cache is not None:
        summary["cache"] = cache.stats()
    atomic_write_text(output.with_name(output.stem + ".summary.json"), json.dumps(summary, indent=2) + "\n")
    return summary


def label_dialogue(teacher: Teacher, task: TaskSpec, dialogue: Dialogue, config: LabelConfig,
                   bank: Bank) -> list[dict]:
    """One dialogue's rows (before any prior), by the task kind's labeller (slots) or the mode's (causal /
    prefix): the record-to-records step a local loop and a Ray actor (dialpref.scale) both run. `config`
    is resolved (`LabelConfig.resolved`)."""
    if task.kind == "slots":
        return label_state_dialogue(teacher, task, dialogue, config.scoring())
    if config.mode == "causal":
        return label_causal(teacher, task, dialogue)
    return score_dialogue(teacher, task, bank, dialogue, config.scoring())


def finish_run(rows: list[dict], task: TaskSpec, config: LabelConfig, output: Path, bank: Bank, source: str,
               seconds: float, computed: bool, n_dialogues: int, teacher: Teacher | None = None,
               dialogues: Sequence[Dialogue] = ()) -> dict[str, Any]:
    """What a run does once every row is in, whichever engine labelled them: the prior (it needs all rows;
    the content-free ones need the teacher and some dialogues), the rows file, the rejects, the summary
    (returned; the caller adds its engine's figures and writes it)."""
    if config.prior != "none" and task.kind == "slots":
        rows = apply_slot_priors(rows, slot_priors(rows, task))
    elif config.prior != "none":
        priors = estimate_priors(config.prior, rows, task, teacher, bank, list(dialogues))
        rows = apply_priors(rows, priors, config.prior, task)
    write_rows(rows, output)
    rejects = _write_rejects(rows, output, source)
    causal = config.mode == "causal"
    summary: dict[str, Any] = {
        "task": task.name, "task_spec": {**asdict(task), "roles": list(task.roles)},
        "teacher": getattr(teacher, "model", None), "config": {**asdict(config), **({"bank": None} if causal else {})},
        "prompts": [STATE_PROMPT_ID] if task.kind == "slots" else [CAUSAL_PROMPT_ID] if causal else bank.ids,
        "prompts_skipped": [] if causal else [p.id for p in bank.prompts if p not in bank.usable()],
        "dialogues": n_dialogues, "utterances": len(rows),
        "without_scores": sum(r["scores"] is None for r in rows), "with_errors": sum(bool(r["errors"]) for r in rows),
        "truncated": sum(bool(r.get("truncation")) for r in rows),
        # rows with errors, by the kind of their first (what followed from it is not counted again)
        "failures_by_reason": dict(Counter(error_kind(r["errors"][0]) for r in rows if r["errors"]).most_common()),
        "seconds": round(seconds, 2),
        "labels_per_second": round(len(rows) / seconds, 2) if seconds and computed else None,
        "answered_from_cache": not computed,
        "prompt_tokens_per_label": round(sum(r["prompt_tokens"] for r in rows) / max(1, len(rows)), 1),
        "output": str(output), "rejects": str(rejects)}
    summary.update(_quality(rows, task, config, output))
    return summary


def _write_rejects(rows: list[dict], output: Path, source: str) -> Path:
    """Rows whose calls failed or whose answers could not be read, with the reason (they stay in the rows)."""
    rejects_path = output.with_name(output.stem + ".rejects.jsonl")
    rejects_path.unlink(missing_ok=True)  # a rerun rewrites the run's files, it does not append to them
    rejects = Rejects(rejects_path, echo=False)
    for row in rows:
        if row["errors"] or row["scores"] is None:
            rejects.add(source=source, line=None, record_id=f"{row['dialogue_id']}#{row['turn_index']}",
                        reason=("no scores: " if row["scores"] is None else "partly failed: ") + "; ".join(
                            row["errors"][:3] or ["no prompt answered"]), raw=row)
    rejects.close()
    return rejects.path


def ece_by_n(rows: Sequence[dict], classes: Sequence[str], buckets: int = 10) -> dict[int, float]:
    """ECE of votes rows using only their first N votes, for N on the curve up to the votes they hold."""
    n_max = max((len(r["votes"]) for r in rows), default=0)
    curve = {}
    for n in sorted({n for n in VOTE_CURVE if n <= n_max} | {n_max} - {0}):
        probs, gold = calibration.arrays([{**r, "scores": scores_at(r, n, classes)} for r in rows], classes)
        curve[n] = round(calibration_error.ece(probs, gold, buckets), 4)
    return curve


def _quality(rows: list[dict], task: TaskSpec, config: LabelConfig, output: Path) -> dict[str, Any]:
    """Against gold, where the dialogues have it: accuracy, macro-F1, ECE, and the plots (slot tasks: joint
    goal accuracy, per-slot accuracy, change F1 and ECE)."""
    if task.kind == "slots":
        report = state_tracking.rows_report(rows, task.slot_names, config.buckets)
        if not report["turns"]:
            return {}
        raw = [{**r, "scores": r["scores_raw"], "predicted": {k: max(d, key=d.get) for k, d in r["scores_raw"].items()}}
               for r in rows if r.get("scores_raw")]
        before = {"gold_before_prior": state_tracking.rows_report(raw, task.slot_names, config.buckets)} if raw else {}
        return {"gold": report, **before}
    probs, gold = calibration.arrays(rows, task.class_names)
    if len(gold) == 0:
        return {}
    result: dict[str, Any] = {"gold": calibration_error.quality(probs, gold, config.buckets)}
    result["reliability_png"] = str(calibration.plot_reliability(
        {config.estimator: (probs, gold)}, output.with_name(output.stem + ".reliability.png"), config.buckets,
        title=f"{task.name}: {config.estimator}"))
    if config.estimator == "votes":
        curve = ece_by_n(rows, task.class_names, config.buckets)
        result["ece_by_n"] = curve
        result["ece_by_n_png"] = str(calibration.plot_ece_by_n(
            {task.name: curve}, output.with_name(output.stem + ".ece_by_n.png")))
    return result
