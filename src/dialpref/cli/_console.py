"""What every command shares: the stderr console, progress that also works without a terminal, the
stdout console for tables and JSON, and the help texts of options several commands take."""

from __future__ import annotations

import logging
import sys

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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

MAP_HELP = ("A data map (YAML) for a file of your own shape: which columns name the dialogue, order its rows, "
            "hold the speaker, text and labels (docs/data.md). Overrides --format.")
STRICT_HELP = ("Reject a whole dialogue for one bad turn (an empty one), as before; by default that turn is dropped "
               "and recorded and the dialogue kept.")
FORMAT_HELP = f"Input format; detected from the content when omitted. One of: {', '.join(FORMATS)}."
# Gemma-3-270M (a base model) in causal completion form with the unlabelled prior divided out: the embedded
# configuration with the best macro-F1 on both dev sets (benchmarks/teacher_search.py); `label` and
# `quickstart` default to it.
EMBEDDED_TEACHER = LABEL_MODEL
TEACHER_HELP = ("Teacher: a packaged model (smollm2-135m, gemma3-270m; qwen2.5-coder-1.5b opt-in), a .gguf path, "
                "an OpenAI-compatible server URL such as http://127.0.0.1:8080 (key from $OPENAI_API_KEY), or "
                "a fleet of servers of one model as URLs joined by commas (load-balanced; --qps per endpoint).")
# The Ray engine's options, shared by `label` and `synth run` (docs/scale_out.md).
ENGINE_OPTION = typer.Option("local", help="'local': this process; 'ray': Ray Data actors, each holding a teacher "
                                           "(pip install 'dialpref\\[scale]'; docs/scale_out.md); the output and "
                                           "resume are the local path's.")
RAY_ADDRESS_OPTION = typer.Option(None, help="--engine ray: a running cluster ('auto', 'ray://head:10001'); none "
                                             "starts a local one.")
ACTORS_OPTION = typer.Option(2, help="--engine ray: at most this many actors (one teacher each).")
CPUS_PER_ACTOR_OPTION = typer.Option(1.0, help="--engine ray: CPUs per actor (an embedded teacher's threads).")
TASK_HELP = ("Built-in task (dialogue_act, sentiment, emotion, has_intent; state tracking: woz_state, "
             "camrest_state) or a task YAML.")
BANK_HELP = ("Prompts: comma-separated built-in ids (choice_names@v1, choice_letters@v1, yes_no@v1, few_shot@v1, "
             "dialogue_list@v1) or a bank YAML (see `dialpref bank list`).")
EXAMPLES_HELP = "Gold-labelled dialogues to draw few-shot examples from (few_shot prompts need them)."


def verbose_option(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every rejected record.")) -> None:
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
