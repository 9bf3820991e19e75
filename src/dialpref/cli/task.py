"""`dialpref task init`: a task spec from the values a label takes in your data."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dialpref.cli._console import MAP_HELP, console
from dialpref.data import Rejects, read_dialogues

task_app = typer.Typer(help="Task specs: what to label and its classes.", no_args_is_help=True)


@task_app.command("init")
def task_init(
    source: str = typer.Argument(..., help="Dialogues with gold labels (any supported format, or with --map)."),
    label: str = typer.Option(..., help="The label (a key of the turns' labels, e.g. a --map labels name)."),
    output: Path = typer.Option(..., help="Where to write the spec (YAML)."),
    name: Optional[str] = typer.Option(None, help="The task's name [default: the label's]."),
    map: Optional[Path] = typer.Option(None, "--map", help=MAP_HELP),
    dialogues: Optional[int] = typer.Option(None, help="Read at most this many dialogues."),
) -> None:
    """Write a task spec from the values a label takes in your data, with a description slot per class.

    Example: dialpref task init my.csv --map my_map.yaml --label emotion --output my_emotions.yaml; then fill in
    the TODOs and use it with `dialpref label --task my_emotions.yaml`.
    """
    from dialpref.label.task_init import task_yaml

    sink = Rejects(echo=False)
    text, values = task_yaml(name or label, label, read_dialogues(source, sink, limit=dialogues, mapping=map))
    if output.exists():
        raise typer.BadParameter(f"{output} exists; a spec you may have edited is not overwritten")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    kind = "slots" if "kind: slots" in text else "classes"
    console.print(f"wrote {output}: {len(values)} {kind} ({', '.join(list(values)[:8])}); {sink.summary()}. "
                  "Fill in its TODO descriptions before labelling.", highlight=False)
