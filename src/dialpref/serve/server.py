"""Run the app with uvicorn: one process, one event loop, the model in its own thread."""

from __future__ import annotations

import logging
from pathlib import Path

from dialpref.serve.app import create_app
from dialpref.serve.runtime import load_predictor
from dialpref.serve.settings import ServeSettings

log = logging.getLogger("dialpref.serve")


def serve(folder: str | Path, host: str = "127.0.0.1", port: int = 8000, settings: ServeSettings | None = None,
          log_level: str = "warning", on_ready=None) -> None:
    """Load the student, then serve until interrupted. `on_ready(url, service)` runs once it listens."""
    import uvicorn

    settings = settings or ServeSettings()
    predictor = load_predictor(folder, settings.runtime, settings.threads)
    app = create_app(predictor, settings, source=str(folder))
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, ws_max_size=settings.max_body_bytes,
                            ws_ping_interval=20, ws_ping_timeout=20, timeout_keep_alive=30,
                            h11_max_incomplete_event_size=64 * 1024)
    server = uvicorn.Server(config)
    if on_ready is not None:
        notify_when_started(server, on_ready, f"http://{host}:{port}")
    server.run()


def notify_when_started(server, on_ready, url: str) -> None:
    """uvicorn has no started callback; wrap its startup so the message comes after the socket is bound."""
    startup = server.startup

    async def started(sockets=None):
        await startup(sockets=sockets)
        if server.started:
            bound = [s.getsockname() for srv in server.servers for s in srv.sockets]
            on_ready(f"http://{bound[0][0]}:{bound[0][1]}" if bound else url)

    server.startup = started
