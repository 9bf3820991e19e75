"""`dialpref serve`: a trained student behind HTTP and WebSocket on this machine."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from dialpref.serve.settings import ServeSettings
from dialpref.serve.runtime import RUNTIMES

DEFAULTS = ServeSettings()


def serve_command(
    model: Path = typer.Argument(..., help="A student folder (from `student train|finetune` or `quickstart`)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on; 0.0.0.0 to serve other machines."),
    port: int = typer.Option(8000, help="Port to listen on."),
    runtime: str = typer.Option(DEFAULTS.runtime, help=f"One of {', '.join(RUNTIMES)}. The ONNX files come from "
                                                       "`dialpref student export MODEL`."),
    threads: int = typer.Option(DEFAULTS.threads, help="Intra-op threads of one model call."),
    max_batch: int = typer.Option(DEFAULTS.max_batch, help="Most utterances one model call takes from "
                                                           "concurrent requests (dynamic batching)."),
    max_wait_ms: float = typer.Option(DEFAULTS.max_wait_ms, help="How long a batch that already has company "
                                                                 "waits for more; a lone request never waits."),
    max_body_kb: int = typer.Option(DEFAULTS.max_body_bytes // 1000, help="Largest request body (and WebSocket "
                                                                          "message), in kB."),
    max_utterances: int = typer.Option(DEFAULTS.max_windows, help="Most utterances one request may classify."),
    max_sessions: int = typer.Option(DEFAULTS.max_sessions, help="Live sessions kept; the least recent goes "
                                                                 "first."),
    read_timeout: float = typer.Option(DEFAULTS.read_timeout, help="Seconds a client may take to send its "
                                                                   "body before a 408 (slow clients)."),
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
