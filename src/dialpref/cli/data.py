"""`dialpref data`: read, check and convert dialogue datasets."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from dialpref.cli._console import FORMAT_HELP, MAP_HELP, STRICT_HELP, _out, _progress, console
from dialpref.data import Rejects, detect_format, read_dialogues
from dialpref.label.slots import flat_state

data_app = typer.Typer(help="Read, check and convert dialogue datasets.", no_args_is_help=True)


@data_app.command("inspect")
def data_inspect(
    source: str = typer.Argument(..., help="A dialogue file (.jsonl, .json, .gz, .csv, .zip or zip::member), "
                                           "or 'chitchat' for the dataset the chitchat-dataset package ships."),
    format: Optional[str] = typer.Option(None, help=FORMAT_HELP),
    split: Optional[str] = typer.Option(None, help="Only dialogues of this split (train / validation / test)."),
    rejects: Optional[Path] = typer.Option(None, help="Write rejected records here (JSONL, with reasons)."),
    show: int = typer.Option(1, help="Print this many dialogues in full."),
    map: Optional[Path] = typer.Option(None, "--map", help=MAP_HELP),
    strict: bool = typer.Option(False, "--strict", help=STRICT_HELP),
) -> None:
    """Count dialogues, turns, speakers and gold labels of a file, and report what had to be rejected.

    Example: dialpref data inspect ../shared/data/meld/test_sent_emo.csv
    """
    sink = Rejects(rejects, strict=strict)
    fmt = "mapped" if map else (format or detect_format(source, sink))
    census = _Census()
    shown = []
    with _progress() as progress:
        bar = progress.add_task(f"reading {fmt}", total=None)
        for dialogue in read_dialogues(source, sink, format=fmt, split=split, mapping=map):
            census.add(dialogue)
            if len(shown) < show:
                shown.append(dialogue)
            progress.advance(bar)
    sink.close()
    out = _out()
    table = census.table(f"{source} ({fmt})")
    table.add_row("rejects", sink.summary())
    out.print(table)
    for dialogue in shown:
        _print_dialogue(out, dialogue)
    for example in sink.examples[:5]:
        out.print(f"[red]rejected[/red] {example['source']}:{example['line']} {example['reason']}", highlight=False)


class _Census:
    """Counts of dialogues, turns, roles, speakers and label values, as `data inspect` shows them."""

    def __init__(self) -> None:
        self.dialogues = self.turns = 0
        self.roles: Counter[str] = Counter()
        self.speakers: Counter[str] = Counter()
        self.labels: dict[str, Counter[str]] = {}

    def add(self, dialogue) -> None:
        self.dialogues += 1
        self.turns += len(dialogue.turns)
        for turn in dialogue.turns:
            self.roles[turn.role] += 1
            self.speakers[turn.speaker] += 1
            for key, value in turn.labels.items():
                if isinstance(value, dict) and value:  # a dialogue state: each slot's value distribution
                    for slot, slot_value in flat_state(value).items():
                        self.labels.setdefault(f"{key} {slot}", Counter())[slot_value] += 1
                    continue
                shown = str(value) if isinstance(value, (str, int, bool)) else "<structured>"
                self.labels.setdefault(key, Counter())[shown] += 1

    def table(self, title: str) -> Table:
        table = Table(title=title, show_header=False)
        per = f" ({self.turns / self.dialogues:.1f} per dialogue)" if self.dialogues else ""
        table.add_row("dialogues", f"{self.dialogues:,}")
        table.add_row("turns", f"{self.turns:,}{per}")
        table.add_row("roles", ", ".join(f"{k} {v:,}" for k, v in self.roles.most_common()))
        top = ", ".join(f"{k} {v:,}" for k, v in self.speakers.most_common(8))
        table.add_row("speakers", f"{len(self.speakers):,} distinct; top: {top}")
        for key, counts in self.labels.items():
            total = sum(counts.values())
            dist = ", ".join(f"{k} {v / total:.1%}" for k, v in counts.most_common(8))
            values = f", {len(counts):,} values" if len(counts) > 8 else ""
            table.add_row(f"label: {key}", f"{total:,} turns{values}; {dist}")
        return table


def _print_dialogue(out, dialogue, turns: int = 12, chars: int = 160) -> None:
    out.print(f"[bold]{dialogue.id}[/bold] {dialogue.metadata}")
    for turn in dialogue.turns[:turns]:
        shown_labels = {k: v for k, v in turn.labels.items() if isinstance(v, str)}
        gold = f" [dim]{escape(str(shown_labels))}[/dim]" if turn.labels else ""
        text = turn.text if len(turn.text) <= chars else turn.text[:chars - 1] + "…"
        out.print(f"  [cyan]{escape(turn.speaker)}[/cyan]: {escape(text)}{gold}", markup=True, highlight=False)
    if len(dialogue.turns) > turns:
        out.print(f"  ... {len(dialogue.turns) - turns} more turns")


@data_app.command("convert")
def data_convert(
    source: str = typer.Argument(..., help="Input dialogue file (any supported format), or 'chitchat'."),
    output: Path = typer.Argument(..., help="Output native JSONL, one Dialogue per line."),
    format: Optional[str] = typer.Option(None, help=FORMAT_HELP),
    split: Optional[str] = typer.Option(None, help="Only dialogues of this split."),
    limit: Optional[int] = typer.Option(None, help="Stop after this many dialogues."),
    rejects: Optional[Path] = typer.Option(None, help="Rejects JSONL (default: OUTPUT with .rejects.jsonl)."),
    map: Optional[Path] = typer.Option(None, "--map", help=MAP_HELP),
    strict: bool = typer.Option(False, "--strict", help=STRICT_HELP),
) -> None:
    """Write dialogues as dialpref's native JSONL (loads with `datasets.load_dataset('json', ...)`)."""
    from dialpref.files import atomic_write, output_lock

    rejects_path = rejects or output.with_suffix(".rejects.jsonl")
    count = 0
    with output_lock(output), atomic_write(output) as handle, _progress() as progress:
        rejects_path.unlink(missing_ok=True)  # this run's rejects only
        sink = Rejects(rejects_path, strict=strict)
        bar = progress.add_task("converting", total=limit)
        for dialogue in read_dialogues(source, sink, format=format, split=split, limit=limit, mapping=map):
            handle.write(dialogue.to_json() + "\n")
            count += 1
            progress.advance(bar)
        sink.close()
    console.print(f"wrote {count:,} dialogues to {output}; {sink.summary()}")
