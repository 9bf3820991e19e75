"""`dialpref serve`: a trained student behind HTTP and WebSocket on this machine."""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

import typer

from dialpref.serve.settings import ServeSettings

DEFAULTS = ServeSettings()
_FIELDS = {f.name: f for f in fields(ServeSettings)}


def _help(name: str) -> str:
    return _FIELDS[name].metadata["help"]


def _flag(name: str):
    """The option of a setting: its default and help come from `ServeSettings`."""
    return typer.Option(getattr(DEFAULTS, name), help=_help(name))


def serve_command(
    model: Path = typer.Argument(..., help="A student folder (from `student train|finetune` or `quickstart`)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on; 0.0.0.0 to serve other machines."),
    port: int = typer.Option(8000, help="Port to listen on."),
    runtime: str = _flag("runtime"),
    threads: int = _flag("threads"),
    max_batch: int = _flag("max_batch"),
    max_wait_ms: float = _flag("max_wait_ms"),
    max_body_kb: int = typer.Option(DEFAULTS.max_body_bytes // 1000, help="Largest request body (and WebSocket "
                                                                          "message), in kB."),
    max_utterances: int = typer.Option(DEFAULTS.max_windows, help=_help("max_windows")),
    max_sessions: int = _flag("max_sessions"),
    read_timeout: float = _flag("read_timeout"),
    log_level: str = typer.Option("warning", help="uvicorn's log level (info logs every request)."),
) -> None:
    """Serve a student: POST /v1/classify, live dialogues on /v1/sessions and WS /v1/live, /healthz,
    /readyz, /metrics (Prometheus) and /docs. Examples: docs/serving.md."""
    from dialpref.serve.server import serve

    settings = ServeSettings(runtime=runtime, threads=threads, max_batch=max_batch, max_wait_ms=max_wait_ms,
                             max_body_bytes=max_body_kb * 1000, max_windows=max_utterances,
                             max_sessions=max_sessions, read_timeout=read_timeout)

    def ready(url: str) -> None:
        # stdout, flushed: a supervisor or a test waits for this line
        print(f"serving {model} ({runtime}, {threads} thread{'s' * (threads > 1)}) on {url}: "
              f"POST {url}/v1/classify, WS {url.replace('http', 'ws', 1)}/v1/live, docs {url}/docs", flush=True)

    try:
        serve(model, host, port, settings, log_level, on_ready=ready)
    except KeyboardInterrupt:
        sys.exit(0)
