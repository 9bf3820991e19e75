"""`dialpref bank`: list the built-in prompts, expand a seed with teacher paraphrases, select on gold dev data."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from dialpref.cli._console import BANK_HELP, EXAMPLES_HELP, TASK_HELP, TEACHER_HELP, _out, console
from dialpref.cli.label import _examples
from dialpref.data import Rejects, read_dialogues
from dialpref.teachers.packaged import CHAT_MODEL

bank_app = typer.Typer(help="The prompt bank: list, expand with teacher paraphrases, select on gold dev data.",
                       no_args_is_help=True)


@bank_app.command("list")
def bank_list() -> None:
    """The built-in prompts: id, template, form and answer style."""
    from dialpref.label.bank import BUILTIN_PROMPTS, DEFAULT_BANK

    table = Table(title="Built-in prompts (templates in dialpref/label/prompts/*.jinja)")
    for column in ("id", "template", "form", "answer", "few-shot per class", "in default bank"):
        table.add_column(column)
    for p in BUILTIN_PROMPTS.values():
        table.add_row(p.id, p.template, p.form, p.answer if p.form == "choice" else "-", str(p.shots or "-"),
                      "yes" if p.id in DEFAULT_BANK else "")
    _out().print(table)
    _out().print("A bank YAML: `prompts:` listing ids, or entries with id, template, form, answer, shots, "
                 "instructions.")


@bank_app.command("expand")
def bank_expand(
    seed: str = typer.Argument("choice_names@v1", help="Built-in prompt id whose instructions get paraphrased."),
    task: str = typer.Option("dialogue_act", help=TASK_HELP),
    n: int = typer.Option(4, help="Paraphrases to ask for."),
    teacher: str = typer.Option(CHAT_MODEL, help=TEACHER_HELP),
    server_model: str = typer.Option("default", help="Model name to send to a server."),
    output: Path = typer.Option(Path("runs/bank/expanded.yaml"), help="Bank YAML: the seed and its paraphrases."),
    cache: Path = typer.Option(Path(".dialpref/teacher-cache.sqlite"), help="Teacher call cache (SQLite)."),
) -> None:
    """Ask the teacher for paraphrases of a seed prompt's instructions; write them as a bank YAML."""
    from dialpref.label.bank import load_bank
    from dialpref.label.select import expand_bank
    from dialpref.label.tasks import load_task
    from dialpref.teachers.factory import make_teacher

    model = make_teacher(teacher, server_model=server_model, cache_path=cache)
    bank, problems = expand_bank(model, load_task(task), load_bank([seed]).prompts[0], n)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(bank.to_yaml(), encoding="utf-8")
    for problem in problems:
        console.print(f"[yellow]{problem}[/yellow]")
    console.print(f"{len(bank.prompts) - 1} paraphrases of {seed} written to {output}")


@bank_app.command("select")
def bank_select(
    bank: str = typer.Argument(..., help=BANK_HELP),
    dev: str = typer.Option(..., help="Gold-labelled dev dialogues (any supported format)."),
    split: Optional[str] = typer.Option(None, help="Only dev dialogues of this split."),
    task: str = typer.Option("dialogue_act", help=TASK_HELP),
    dialogues: int = typer.Option(10, help="Dev dialogues to score each prompt on."),
    examples: Optional[str] = typer.Option(None, help=EXAMPLES_HELP),
    min_accuracy: Optional[float] = typer.Option(None, help="Keep prompts at or above this accuracy "
                                                            "(default: the majority-class accuracy)."),
    max_ece: float = typer.Option(1.0, help="Keep prompts at or below this ECE."),
    prior: str = typer.Option("none", help="Score each prompt after this prior correction."),
    teacher: str = typer.Option(CHAT_MODEL, help=TEACHER_HELP),
    server_model: str = typer.Option("default", help="Model name to send to a server."),
    output: Path = typer.Option(Path("runs/bank/selected.yaml"), help="Bank YAML of the prompts that pass."),
    cache: Path = typer.Option(Path(".dialpref/teacher-cache.sqlite"), help="Teacher call cache (SQLite)."),
) -> None:
    """Score each prompt of a bank on gold dev dialogues (accuracy, macro-F1, ECE) and keep those that pass."""
    from dialpref.label.bank import load_bank
    from dialpref.label.select import select_bank
    from dialpref.label.tasks import load_task
    from dialpref.teachers.factory import make_teacher

    spec = load_task(task)
    candidates = load_bank(bank, _examples(examples, spec))
    items = list(read_dialogues(dev, Rejects(echo=False), split=split, limit=dialogues))
    model = make_teacher(teacher, server_model=server_model, cache_path=cache)
    kept, table_rows, floor = select_bank(model, spec, candidates, items, min_accuracy=min_accuracy,
                                          max_ece=max_ece, prior=prior)
    table = Table(title=f"{spec.name} on {len(items)} dev dialogues (accuracy floor {floor:.3f})")
    for column in ("prompt", "accuracy", "macro-F1", "ECE", "kept"):
        table.add_column(column)
    for r in table_rows:
        table.add_row(r["prompt"], f"{r['accuracy']:.3f}", f"{r['macro_f1']:.3f}", f"{r['ece']:.3f}",
                      "yes" if r["kept"] else "no")
    _out().print(table)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(kept.to_yaml(), encoding="utf-8")
    console.print(f"{len(kept.prompts)} of {len(candidates.prompts)} prompts kept: {output}")
