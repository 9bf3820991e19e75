"""The `dialpref` command: one Typer app; each command group lives in its own module of this package."""

from __future__ import annotations

import sys

import typer

from dialpref.cli._console import console, verbose_option
from dialpref.cli.bank import bank_app
from dialpref.cli.data import data_app
from dialpref.cli.label import calibrate, label
from dialpref.cli.next_utterance import next_app
from dialpref.cli.quickstart import quickstart
from dialpref.cli.serve import serve_command
from dialpref.cli.student import predict, student_app
from dialpref.cli.synth import synth_app
from dialpref.cli.task import task_app
from dialpref.cli.teachers import teachers_app

app = typer.Typer(help="dialpref: LLM judgements about conversations, distilled into small dialogue models.",
                  no_args_is_help=True, rich_markup_mode="rich")
app.callback()(verbose_option)
app.command("label")(label)
app.command("calibrate")(calibrate)
app.command("quickstart")(quickstart)
app.command("predict")(predict)
app.command("serve")(serve_command)
app.add_typer(data_app, name="data")
app.add_typer(task_app, name="task")
app.add_typer(teachers_app, name="teachers")
app.add_typer(bank_app, name="bank")
app.add_typer(student_app, name="student")
app.add_typer(synth_app, name="synth")
app.add_typer(next_app, name="next")


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
