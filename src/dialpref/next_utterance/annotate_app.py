"""The A/B annotation page's web app (FastAPI) and its server (uvicorn, 127.0.0.1 by default).

Routes: `GET /` the page (an autoescaped jinja2 template; the texts are put in with `textContent`, so a
prediction holding HTML shows as text), `GET /api/next?annotator=` the next sample, `POST /api/answer` one
verdict, `GET /healthz`. Bad requests get a 4xx with the reason; nothing a client sends can stop the server.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import jinja2

from dialpref.next_utterance.annotate import Answer, AnnotationStore


@lru_cache(maxsize=None)
def page() -> str:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    text = resources.files("dialpref.next_utterance").joinpath("templates", "annotate.html.jinja").read_text("utf-8")
    return env.from_string(text).render(title="dialpref: which next turn is closer?")


def create_app(store: AnnotationStore):
    from fastapi import FastAPI, HTTPException, Query
    from fastapi.responses import HTMLResponse

    app = FastAPI(title="dialpref annotate", docs_url=None, redoc_url=None)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page()

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "samples": len(store.samples)}

    @app.get("/api/next")
    def next_sample(annotator: str = Query(min_length=1, max_length=64, pattern=r"^[\w .@-]+$")) -> dict:
        return store.next_for(annotator)

    @app.post("/api/answer")
    def answer(body: Answer) -> dict:
        try:
            written = store.answer(body)
        except KeyError:
            raise HTTPException(404, f"unknown sample {body.sample_id!r}") from None
        return {"written": written, **store.next_for(body.annotator)}

    return app


def run(store: AnnotationStore, host: str = "127.0.0.1", port: int = 8765, on_ready=None) -> None:
    """Serve until interrupted; `on_ready(url)` once the socket is bound (port 0 picks a free one)."""
    import uvicorn

    from dialpref.serve.server import notify_when_started

    server = uvicorn.Server(uvicorn.Config(create_app(store), host=host, port=port, log_level="warning"))
    if on_ready is not None:
        notify_when_started(server, on_ready, f"http://{host}:{port}")
    server.run()
