"""`dialpref quickstart`: the whole method on embedded defaults, and what it buys."""

from __future__ import annotations

from pathlib import Path

import typer

from dialpref.cli._console import EMBEDDED_TEACHER, TEACHER_HELP, _out, console
from dialpref.cli.data import data_inspect

SHARED_DAILYDIALOG = Path("../shared/data/dailydialog/data.zip")


def quickstart(
    source: str = typer.Option("auto", help="Dialogues: 'auto' (DailyDialog from ../shared/data when present, "
                                            "with gold acts; else the chitchat-dataset package, no gold) or a file."),
    train_utterances: int = typer.Option(1500, help="Read training dialogues until the teacher has this many "
                                                    "utterances to label."),
    eval_utterances: int = typer.Option(200, help="Read held-out dialogues until this many utterances."),
    min_turns: int = typer.Option(4, help="Skip dialogues with fewer turns."),
    gold_fraction: float = typer.Option(0.1, help="Share of the training utterances' gold labels to fine-tune on."),
    finetune_steps: int = typer.Option(60, help="Optimiser steps of each gold fine-tune (16 utterances a step)."),
    seed: int = typer.Option(0, help="Seed of the student and of the gold subset."),
    teacher: str = typer.Option(EMBEDDED_TEACHER, help=TEACHER_HELP),
    output: Path = typer.Option(Path("runs/quickstart"), help="Run folder."),
) -> None:
    """The whole method on embedded defaults, and what it buys (about 8 minutes on 2 CPU cores).

    Real dialogues -> teacher scores -> a student pretrained on intra-dialogue pairs and fine-tuned on 10 %
    of the gold labels, beside the same student on that gold alone and the teacher, on the same held-out
    utterances; the teacher's cost per label against the student's; the teacher's reliability diagram.
    Report: runs/quickstart/report.html. A rerun answers every teacher call from the run's cache.
    """
    from dialpref.pipeline import DistillConfig, distill_run

    if source == "auto":
        source = str(SHARED_DAILYDIALOG) if SHARED_DAILYDIALOG.exists() else "chitchat"
    splits = ("train", "test") if source.endswith("dailydialog/data.zip") else (None, None)
    console.rule("1/2  the data")
    (output / "rejects.jsonl").unlink(missing_ok=True)  # a rerun rewrites its rejects, it does not append
    data_inspect(source=source, format=None, split=splits[0], rejects=output / "rejects.jsonl", show=1, map=None,
                 strict=False)
    console.rule("2/2  teacher -> pairwise student -> evaluation (dialogue acts)")
    config = DistillConfig(source=source, teacher=teacher, train_split=splits[0], eval_split=splits[1],
                           train_utterances=train_utterances, eval_utterances=eval_utterances, min_turns=min_turns,
                           gold_fraction=gold_fraction, finetune_steps=finetune_steps, seed=seed)
    try:
        result = distill_run(config, output, output / "teacher-cache.sqlite", say=lambda m: console.print(m))
    except (ValueError, RuntimeError) as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(1) from None
    from dialpref.report.quickstart import cost_line, verdict

    _out().print(verdict(result), highlight=False)
    _out().print(cost_line(result["cost"]), highlight=False)
    console.print(f"done in {result['wall_seconds']:.0f} s: open {result['report']} (student in {output}/student, "
                  "Hugging Face format; summary.json has every figure).")
