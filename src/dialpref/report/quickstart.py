"""The report of one `distill_run`: the answer first (how good, how costly, how trustworthy), then the
evidence (plots, timings). Every figure comes from the run's own result dictionary."""

from __future__ import annotations

from pathlib import Path

from dialpref.report.html import write_report
from dialpref.report.plots import plot_confusion, plot_student_vs_teacher

WHO = {"student": "student (teacher pairs + gold)", "gold_only": "student (gold only)", "teacher": "teacher",
       "majority_class": "majority class"}


def verdict(result: dict) -> str:
    """One paragraph that says what the run measured."""
    n = result["eval_utterances"]
    if not result["has_gold"]:
        a = result["student_teacher_agreement"]
        return (f"These dialogues carry no gold labels, so no accuracy can be measured. The student agrees with "
                f"its teacher on {a['agreement']:.1%} of {n} held-out utterances (95 % interval "
                f"{a['low']:.1%} to {a['high']:.1%}). For accuracy, run `dialpref quickstart --source FILE` on a "
                f"file whose turns carry gold labels of the task (e.g. DailyDialog's data.zip).")
    parts = [f"{WHO[k]} {result[k]['accuracy']:.3f} accuracy / {result[k]['macro_f1']:.3f} macro-F1"
             for k in ("student", "gold_only", "teacher", "majority_class") if result.get(k)]
    gain = ""
    if result.get("gold_only"):
        delta = result["student"]["accuracy"] - result["gold_only"]["accuracy"]
        gain = (f" The teacher's labels {'add' if delta > 0 else 'cost'} {abs(delta) * 100:.1f} accuracy points over "
                f"the same {result['gold_examples']} gold labels alone.")
    return f"On {n} held-out utterances with gold labels: " + "; ".join(parts) + "." + gain


def cost_line(cost: dict) -> str:
    if cost["teacher_seconds_per_label"] is None:
        return (f"The int8 student takes {cost['student_ms_per_utterance']:.2f} ms per utterance on one thread; the "
                "server teacher's cost is not known from this run (every answer came from the cache, and a "
                "server is not called again just to time it).")
    return (f"The teacher takes {cost['teacher_seconds_per_label']:.3f} s per label; the int8 student "
            f"{cost['student_ms_per_utterance']:.2f} ms per utterance on one thread: {cost['ratio']:,.0f}x faster.")


def quality_rows(result: dict) -> list[dict]:
    return [{"who": WHO[k], "accuracy": result[k]["accuracy"], "macro-F1": result[k]["macro_f1"]}
            for k in ("student", "gold_only", "teacher", "majority_class") if result.get(k)]


def write_run_report(output: Path, task, source: str, result: dict, evaluated: dict,
                     reliability_png: str | None) -> Path:
    names = task.class_names
    scatter = plot_student_vs_teacher(evaluated["teacher_probs"], evaluated["probs"], names,
                                      output / "student_vs_teacher.png")
    has_gold = result["has_gold"]
    reference = evaluated["gold"] if has_gold else evaluated["said"]["teacher"]
    confusion = plot_confusion(reference, evaluated["said"]["student"], names, output / "confusion.png",
                               "student against gold" if has_gold else "student against teacher (no gold)",
                               rows_label="gold label" if has_gold else "teacher's label",
                               columns_label="student's label")
    truncated = sum(r.get("truncated") or 0 for r in result["teacher_runs"].values())
    sections = [
        ("How good is the student?", [verdict(result), quality_rows(result) or
                                      [{"student-teacher agreement": result["student_teacher_agreement"]}]]),
        ("What does it cost?", [cost_line(result["cost"]), [{k: v for k, v in result["cost"].items()
                                                             if not isinstance(v, dict)}]]),
        ("Can I trust the teacher?", [Path(reliability_png)] if has_gold and reliability_png else
         ["No gold labels here, so no reliability diagram: the teacher's calibration cannot be checked."]),
        ("Student scores against the teacher's (held-out utterances)", [scatter]),
        ("Confusion matrix", [confusion]),
        ("Data", [[{"training dialogues": result["train_dialogues"], "held-out dialogues": result["eval_dialogues"],
                    "teacher-labelled training utterances": result["train_utterances"],
                    "gold labels used": result["gold_examples"],
                    "labels from a truncated context": truncated,
                    "dialogues skipped": ", ".join(f"{k}: {v}" for k, v in result["skipped_dialogues"].items())
                    or "none"}]]),
        ("Where the time went", [[{"stage": k, "seconds": v} for k, v in result["timings_seconds"].items()],
                                 f"wall time {result['wall_seconds']} s"]),
    ]
    return write_report(output / "report.html", f"dialpref run: {task.name} from {source}", sections)
