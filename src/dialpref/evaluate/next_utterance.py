"""Next-utterance figures from per-sample rows: means over samples, win / tie / loss, agreement with people.

Pure arithmetic over the rows `dialpref.next_utterance.evaluate` writes (no model, no judge call), so a
benchmark and the CLI summarise the same way. A mean over nothing is None, not 0.0: 0.0 would read as a
real, very bad score.
"""

from __future__ import annotations

import statistics
from collections import Counter
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


def _by_sample(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    """sample -> annotator -> verdict (an annotator's last answer wins)."""
    out: dict[str, dict[str, str]] = {}
    for row in rows:
        out.setdefault(row["sample_id"], {})[row["annotator"]] = row["verdict"]
    return out


def _strict_majority(verdicts: list[str]) -> str | None:
    """The verdict more annotators gave than any other, or None when the top ones tie."""
    counts = Counter(verdicts).most_common()
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
        return None
    return counts[0][0]


def human_majority(rows: list[dict[str, str]]) -> dict[str, str]:
    """sample -> the people's verdict in the judge's terms (A / B / tie; "both bad" is a tie between the
    systems), by strict majority over annotators; samples whose annotators split evenly are left out."""
    out = {}
    for sample, by_annotator in _by_sample(rows).items():
        verdict = _strict_majority(["tie" if v == "both_bad" else v for v in by_annotator.values()])
        if verdict is not None:
            out[sample] = verdict
    return out


def leave_one_out(rows: list[dict[str, str]]) -> dict[str, Any]:
    """Each annotator against the strict majority of the others on the samples they share (the ceiling a
    judge can be held to), and Cohen's kappa of every pair of annotators on their shared samples."""
    from sklearn.metrics import cohen_kappa_score

    by_sample = _by_sample(rows)
    annotators = sorted({a for v in by_sample.values() for a in v})
    per_annotator = {}
    for name in annotators:
        hits = [v[name] == others for v in by_sample.values() if name in v and len(v) > 1
                for others in [_strict_majority([x for a, x in v.items() if a != name])] if others is not None]
        if hits:
            per_annotator[name] = {"samples": len(hits), "agreement": round(sum(hits) / len(hits), 4)}
    kappas = {}
    for i, first in enumerate(annotators):
        for second in annotators[i + 1:]:
            shared = [v for v in by_sample.values() if first in v and second in v]
            if len(shared) >= 2:
                kappa = cohen_kappa_score([v[first] for v in shared], [v[second] for v in shared],
                                          labels=["A", "B", "tie", "both_bad"])
                kappas[f"{first}|{second}"] = None if kappa != kappa else round(float(kappa), 4)
    rates = [v["agreement"] for v in per_annotator.values()]
    return {"annotators": len(annotators), "per_annotator": per_annotator,
            "mean_agreement": round(statistics.fmean(rates), 4) if rates else None, "pairwise_kappa": kappas}


def human_report(judge_verdicts: dict[str, str], rows: list[dict[str, str]]) -> dict[str, Any]:
    """What `next eval --human` states: the judge against the people's majority, and the people against
    each other (leave-one-out) where several labelled the same samples."""
    report: dict[str, Any] = {"answers": len(rows), "judge": agreement(judge_verdicts, human_majority(rows))}
    if len({r["annotator"] for r in rows}) > 1:
        report["leave_one_out"] = leave_one_out(rows)
    return report
