"""Label-prior correction without gold labels (contextual calibration, Zhao et al. 2021).

Small teachers answer one class for almost everything: their raw option
probabilities mix what the utterance says with a strong prior for certain
answer tokens. Dividing that prior out, p'(c) ∝ p(c) / prior(c), removes the
bias. The prior is estimated per prompt (each prompt has its own bias), without
gold labels, in one of two ways:

- `content_free`: the teacher's answer on content-free utterances ("N/A",
  "[MASK]", "...") placed at the end of real dialogues (a few extra calls);
- `unlabelled`: the mean distribution over the utterances being labelled
  (no extra calls).

Dividing out the prior also assumes the classes are equally common, which
costs accuracy where one class dominates (MELD is half "neutral").
`content_free_em` divides out the content-free prior (the teacher's bias
alone), then re-estimates the classes' frequencies from the unlabelled
utterances by EM (Saerens, Latinne & Decaestecker 2002): with the corrected
scores as posteriors under a uniform prior, repeat
pi(c) <- mean over utterances of p'(c) pi(c) / sum_k p'(k) pi(k)
until it settles, and weight the scores by pi. Still no gold label is used.
(After the `unlabelled` correction EM has nothing to find: dividing by the
mean answer has already removed the classes' frequencies with the bias.)
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from dialpref.data.schema import Dialogue, Turn
from dialpref.label.bank import Bank, PromptSpec, utterance_queries
from dialpref.label.causal import PROMPT_ID as CAUSAL_PROMPT_ID, label_causal
from dialpref.label.scoring import class_distribution, finish_row, query_distribution, shares_at
from dialpref.label.tasks import TaskSpec
from dialpref.teachers.base import Teacher

CONTENT_FREE = ("N/A", "[MASK]", "...")
FLOOR = 1e-6  # smallest prior a class is divided by
PRIORS = ("none", "content_free", "unlabelled", "content_free_em")


def mean_distribution(distributions: Iterable[dict[str, float] | None], classes: Sequence[str]) -> dict[str, float]:
    total = {c: 0.0 for c in classes}
    count = 0
    for dist in distributions:
        if not dist:
            continue
        for c in classes:
            total[c] += dist[c]
        count += 1
    if not count:
        return {c: 1.0 / len(classes) for c in classes}
    return {c: v / count for c, v in total.items()}


def content_free_probes(task: TaskSpec, dialogues: Sequence[Dialogue], max_dialogues: int = 3):
    """Real dialogues each ended by a content-free turn from a speaker the task labels."""
    for dialogue in dialogues[:max_dialogues]:
        speaker = next((t for t in dialogue.turns if task.labelled(t)), dialogue.turns[0])
        for filler in CONTENT_FREE:
            yield Dialogue(id=dialogue.id, turns=[*dialogue.turns,
                                                  Turn(speaker=speaker.speaker, role=speaker.role, text=filler)])


def causal_content_free_prior(teacher: Teacher, task: TaskSpec, dialogues: Sequence[Dialogue],
                              max_dialogues: int = 3) -> dict[str, float]:
    """The causal prompt's mean answer on the content-free turn."""
    answers = [next(iter(label_causal(teacher, task, probe)[-1]["per_prompt"].values()))
               for probe in content_free_probes(task, dialogues, max_dialogues)]
    return mean_distribution(answers, task.class_names)


def content_free_prior(teacher: Teacher, task: TaskSpec, prompt: PromptSpec, dialogues: Sequence[Dialogue],
                       bank: Bank | None = None, max_dialogues: int = 3) -> dict[str, float]:
    """One prompt's mean answer when the target utterance says nothing, in up to `max_dialogues` dialogues."""
    shots = bank.shots_for(prompt, task) if bank is not None else []
    answers = []
    for probe in content_free_probes(task, dialogues, max_dialogues):
        queries = utterance_queries(prompt, task, probe, len(probe.turns) - 1, shots)
        answers.append(class_distribution(queries, [query_distribution(teacher, q)[0] for q in queries], task))
    return mean_distribution(answers, task.class_names)


def unlabelled_prior(rows: Iterable[dict[str, Any]], prompt_id: str, classes: Sequence[str]) -> dict[str, float]:
    return mean_distribution((r["per_prompt"].get(prompt_id) for r in rows), classes)


def em_class_frequencies(distributions: Sequence[dict[str, float]], classes: Sequence[str],
                         iterations: int = 200, tolerance: float = 1e-7) -> dict[str, float]:
    """Class frequencies pi of an unlabelled set whose posteriors (under a uniform prior) are `distributions`."""
    pi = {c: 1.0 / len(classes) for c in classes}
    if not distributions:
        return pi
    for _ in range(iterations):
        total = {c: 0.0 for c in classes}
        for dist in distributions:
            weighted = {c: dist[c] * pi[c] for c in classes}
            z = sum(weighted.values()) or 1.0
            for c in classes:
                total[c] += weighted[c] / z
        new = {c: v / len(distributions) for c, v in total.items()}
        settled = max(abs(new[c] - pi[c]) for c in classes) < tolerance
        pi = new
        if settled:
            break
    return pi


def em_prior(rows: Iterable[dict[str, Any]], prompt_id: str, classes: Sequence[str],
             prior: dict[str, float]) -> dict[str, float]:
    """The divisor that turns raw scores into bias-free, EM-reweighted ones: prior(c) / pi(c), as `correct` expects."""
    corrected = [correct(r["per_prompt"][prompt_id], prior) for r in rows if r["per_prompt"].get(prompt_id)]
    pi = em_class_frequencies(corrected, classes)
    return {c: prior[c] / max(pi[c], FLOOR) for c in classes}


def correct(scores: dict[str, float], prior: dict[str, float]) -> dict[str, float]:
    """p'(c) ∝ p(c) / prior(c), renormalised to sum to 1."""
    raw = {c: p / max(prior.get(c, FLOOR), FLOOR) for c, p in scores.items()}
    total = sum(raw.values()) or 1.0
    return {c: v / total for c, v in raw.items()}


def estimate_priors(kind: str, rows: list[dict[str, Any]], task: TaskSpec, teacher: Teacher | None = None,
                    bank: Bank | None = None, dialogues: Sequence[Dialogue] = ()) -> dict[str, dict[str, float]]:
    """prompt id -> prior, by `kind` (content_free needs the teacher, the bank and some dialogues)."""
    prompt_ids = sorted({pid for r in rows for pid in r["per_prompt"]})
    if kind == "unlabelled":
        return {pid: unlabelled_prior(rows, pid, task.class_names) for pid in prompt_ids}
    if kind in ("content_free", "content_free_em"):
        if teacher is None:
            raise ValueError("the content-free prior needs the teacher and some dialogues")
        by_id = {p.id: p for p in bank.prompts} if bank is not None else {}
        priors = {}
        for pid in prompt_ids:
            if pid == CAUSAL_PROMPT_ID:
                priors[pid] = causal_content_free_prior(teacher, task, dialogues)
            elif pid in by_id and by_id[pid].per_utterance:
                priors[pid] = content_free_prior(teacher, task, by_id[pid], dialogues, bank)
        if kind == "content_free_em":
            priors = {pid: em_prior(rows, pid, task.class_names, prior) for pid, prior in priors.items()}
        return priors
    raise ValueError(f"unknown prior {kind!r}; one of {PRIORS}")


def corrected_scores_at(rows: Sequence[dict[str, Any]], n: int, task: TaskSpec, kind: str = "none",
                        divisors: dict[str, dict[str, float]] | None = None) -> list[dict[str, float]]:
    """S of each votes row from its first n votes: per-prompt shares divided by the prompt's prior, then
    averaged over prompts (uniform where no vote is valid). `kind="unlabelled"` takes each prompt's prior
    from these shares themselves; another kind passes its `divisors` (prompt id -> prior)."""
    classes = task.class_names
    per_row = [shares_at(r, n, classes) for r in rows]
    if kind == "unlabelled":
        pids = {p for d in per_row for p in d}
        divisors = {p: mean_distribution([d.get(p) for d in per_row], classes) for p in pids}
    if kind != "none" and divisors:
        per_row = [{p: correct(dist, divisors[p]) if p in divisors else dist for p, dist in d.items()}
                   for d in per_row]
    return [{c: sum(x[c] for x in d.values()) / len(d) for c in classes} if d else
            {c: 1 / len(classes) for c in classes} for d in per_row]


def apply_priors(rows: list[dict[str, Any]], priors: dict[str, dict[str, float]], kind: str,
                 task: TaskSpec) -> list[dict[str, Any]]:
    """Rows with each prompt's scores divided by its prior and S recomputed; raw scores kept."""
    out = []
    for row in rows:
        per_prompt = {pid: (correct(d, priors[pid]) if d and pid in priors else d)
                      for pid, d in row["per_prompt"].items()}
        fixed = {**row, "per_prompt_raw": row["per_prompt"], "per_prompt": per_prompt, "errors": list(row["errors"]),
                 "prior": {"kind": kind, "values": priors}}
        if row["estimator"] == "votes":
            # Votes are counts; the correction applies to their shares, prompt by prompt.
            shares = [d for d in per_prompt.values() if d]
            if shares and row.get("scores"):
                fixed["scores"] = {c: sum(d[c] for d in shares) / len(shares) for c in task.classes}
                fixed["predicted"] = max(fixed["scores"], key=fixed["scores"].get)
            out.append(fixed)
        else:
            out.append(finish_row(fixed, task))
    return out


def slot_priors(rows: Sequence[dict[str, Any]], task: TaskSpec) -> dict[str, dict[str, float]]:
    """A slots task's unlabelled prior: per slot, the mean of its value distributions over the run's turns."""
    return {s.name: mean_distribution((r["scores"][s.name] for r in rows if r.get("scores")), s.values)
            for s in task.slots}


def apply_slot_priors(rows: Sequence[dict[str, Any]], priors: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """Rows of a slots task with each slot's distribution divided by its prior (`correct`); raw scores kept in
    `scores_raw`. A small teacher leans on a few values whatever the turn says (SmolLM2 on WOZ: `dontcare`
    for 86 % of food answers, where 70 % of gold changes are `none`); dividing that lean out is what the
    unlabelled prior does for the other kinds."""
    out = []
    for row in rows:
        if not row.get("scores"):
            out.append(row)
            continue
        scores = {slot: correct(dist, priors[slot]) for slot, dist in row["scores"].items()}
        out.append({**row, "scores_raw": row["scores"], "scores": scores,
                    "predicted": {slot: max(d, key=d.get) for slot, d in scores.items()},
                    "prior": {"kind": "unlabelled", "values": priors}})
    return out
