"""Next-utterance figures from per-sample rows: means over samples, win / tie / loss, agreement with people.

Pure arithmetic over the rows `dialpref.next_utterance.evaluate` writes (no model, no judge call), so a
benchmark and the CLI summarise the same way. A mean over nothing is None, not 0.0: 0.0 would read as a
real, very bad score.
"""

from __future__ import annotations

import statistics
from typing import Any


def mean_or_none(values: list[float]) -> float | None:
    """The mean, or None where nothing was scored (0.0 would read as a real, very bad score)."""
    return round(statistics.fmean(values), 4) if values else None


def summarise_scores(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over samples; judge calls that failed after retries are left out and counted."""
    parsed = [r for r in rows if not r["format_failure"]]
    judged = [r["judge_score"] for r in rows if r.get("judge_score") is not None]
    out = {"samples": len(rows), "format_failure_rate": round(1 - len(parsed) / len(rows), 4) if rows else 0.0,
           "embed_sim": mean_or_none([r["embed_sim"] for r in rows if "embed_sim" in r]),
           "judge_score": mean_or_none(judged), "judge_failures": sum(1 for r in rows if "judge_score" in r
                                                                and r["judge_score"] is None),
           "embed_sim_parsed_only": mean_or_none([r["embed_sim"] for r in parsed if "embed_sim" in r]),
           "judge_score_parsed_only": mean_or_none([r["judge_score"] for r in parsed if r.get("judge_score") is not None])}
    return out


def summarise_pairwise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    count = {v: sum(1 for r in rows if r["verdict"] == v) for v in ("A", "B", "tie")}
    judged = [r for r in rows if r["rule"] == "judge"]
    return {"win": count["A"], "tie": count["tie"], "loss": count["B"], "samples": n,
            "win_rate": round(count["A"] / n, 4) if n else 0.0, "loss_rate": round(count["B"] / n, 4) if n else 0.0,
            "flip_rate": round(sum(r["flipped"] for r in judged) / len(judged), 4) if judged else 0.0,
            "judged_by_llm": len(judged)}


def agreement(judge_verdicts: dict[str, str], human: dict[str, str]) -> dict[str, Any]:
    """How often the judge agrees with people on the samples both labelled, and Cohen's kappa."""
    from sklearn.metrics import cohen_kappa_score

    shared = sorted(set(judge_verdicts) & set(human))
    if not shared:
        raise ValueError("no sample has both a judge verdict and a human label")
    j = [judge_verdicts[k] for k in shared]
    h = [human[k] for k in shared]
    kappa = cohen_kappa_score(j, h, labels=["A", "B", "tie"])
    return {"samples": len(shared), "agreement": round(sum(x == y for x, y in zip(j, h)) / len(shared), 4),
            "cohen_kappa": None if kappa != kappa else round(float(kappa), 4)}
