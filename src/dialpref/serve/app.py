"""The FastAPI app around one student: classify, live sessions, health, readiness and metrics.

Routes (docs/serving.md has examples):
    POST /v1/classify               utterances with their context, or whole dialogues -> label and scores
    POST /v1/sessions               open a live dialogue -> session_id
    POST /v1/sessions/{id}/turns    one turn of it -> that turn's label, with the context the session saw
    DELETE /v1/sessions/{id}        close it
    WS   /v1/live[?session_id=]     the same, one JSON turn per message, one answer per turn
    GET  /v1/model, /healthz, /readyz, /metrics
Every model call goes through the `MicroBatcher`, so concurrent requests and sessions share batches.
"""

from __future__ import annotations

import json
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from dialpref.data.schema import Dialogue, Turn
from dialpref.data.windows import Window, dialogue_windows, window_at
from dialpref.serve.batcher import MicroBatcher
from dialpref.serve.limits import BodyLimit
from dialpref.serve.metrics import ServerMetrics
from dialpref.serve.schemas import (ClassifyRequest, ClassifyResponse, DialogueResult, Scored, SessionCreated,
                                    TurnIn)
from dialpref.serve.sessions import SessionStore, UnknownSession
from dialpref.serve.settings import ServeSettings


class StudentService:
    """The server's state: predictor, batcher, sessions, metrics; the routes call its methods."""

    def __init__(self, predictor, settings: ServeSettings, source: str = "") -> None:
        self.predictor, self.settings, self.source = predictor, settings, source
        self.task = predictor.task
        self.context_turns = predictor.config.context_turns
        self.metrics = ServerMetrics()
        self.batcher = MicroBatcher(predictor.predict_proba, settings.max_batch, settings.max_wait_ms,
                                    on_batch=self.metrics.batch.observe)
        self.sessions = SessionStore(predictor, settings.max_sessions, settings.session_idle_seconds)
        self.ready = False

    @asynccontextmanager
    async def lifespan(self, app: FastAPI):
        self.predictor.predict_proba([window_at([Turn(speaker="user", role="user", text="hello")], 0, 0)])
        await self.batcher.start()
        self.ready = True
        yield
        self.ready = False
        await self.batcher.stop()

    def describe(self) -> dict:
        return {"task": self.task.name, "kind": "classification", "classes": self.task.class_names,
                "labelled_roles": list(self.task.roles), "context_turns": self.context_turns,
                "max_length": self.predictor.config.max_length,
                "runtime": self.settings.runtime, "threads": self.settings.threads, "source": self.source}

    def scored(self, probs, **extra) -> Scored:
        names = self.task.class_names
        return Scored(label=names[int(probs.argmax())],
                      scores={c: round(float(p), 6) for c, p in zip(names, probs)}, **extra)

    async def classify(self, request: ClassifyRequest) -> ClassifyResponse:
        if request.utterances is not None:
            windows = [self.utterance_window(u) for u in request.utterances]
            self._check_size(len(windows))
            probs = await self.batcher.classify(windows)
            results = [self.scored(p, **({'id': u.id} if u.id is not None else {}))
                       for p, u in zip(probs, request.utterances)]
            return ClassifyResponse(task=self.task.name, results=results)
        dialogues = [Dialogue(id=d.id or f"dialogue-{i}", turns=[_turn(t) for t in d.turns])
                     for i, d in enumerate(request.dialogues)]
        per_dialogue = [dialogue_windows(d, self.context_turns, self.task.roles) for d in dialogues]
        self._check_size(sum(len(w) for w in per_dialogue))
        probs = await self.batcher.classify([w for ws in per_dialogue for w in ws])
        out, start = [], 0
        for source, dialogue, windows in zip(request.dialogues, dialogues, per_dialogue):
            found = {w.turn_index: self.scored(p, turn_index=w.turn_index)
                     for w, p in zip(windows, probs[start:start + len(windows)])}
            start += len(windows)
            turns = [found.get(i) or self.skipped(i) for i in range(len(dialogue.turns))]
            out.append(DialogueResult(id=source.id, turns=turns))
        return ClassifyResponse(task=self.task.name, dialogues=out)

    def skipped(self, turn_index: int) -> Scored:
        return Scored(label=None, turn_index=turn_index,
                      skipped=f"the task labels {', '.join(self.task.roles)} turns only")

    def utterance_window(self, u) -> Window:
        """The window training built for this utterance: its last k context turns, then itself."""
        context = u.context[max(0, len(u.context) - self.context_turns):] if self.context_turns else []
        turns = [_turn(t) for t in context] + [_turn(u)]
        return window_at(turns, len(turns) - 1, self.context_turns, u.id or "")

    async def turn(self, session_id: str, turn: TurnIn) -> Scored:
        stream = self.sessions.get(session_id)
        window = stream.push(turn.speaker, turn.text, turn.role)
        index = stream.index
        if window is None:
            return self.skipped(index)
        return self.scored((await self.batcher.classify([window]))[0], turn_index=index)

    def _check_size(self, windows: int) -> None:
        if windows > self.settings.max_windows:
            raise HTTPException(413, f"{windows} utterances in one request, over the limit of "
                                     f"{self.settings.max_windows}; split the request")


def _turn(t: TurnIn) -> Turn:
    return Turn(speaker=t.speaker, role=t.role, text=t.text)


def _validation_message(errors) -> str:
    parts = []
    for e in errors[:5]:
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
        parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
    return "; ".join(parts)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError):
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in err.errors()[:20]]
        return JSONResponse({"error": _validation_message(err.errors()), "detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException):
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code, headers=err.headers)

    @app.exception_handler(Exception)
    async def internal(request: Request, err: Exception):
        return JSONResponse({"error": f"internal error ({type(err).__name__}); the server goes on"},
                            status_code=500)


def _add_metrics_middleware(app: FastAPI, service: StudentService) -> None:
    @app.middleware("http")
    async def timed(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        service.metrics.observe(route, response.status_code, time.perf_counter() - started)
        return response


def _add_classify_routes(app: FastAPI, service: StudentService) -> None:
    @app.post("/v1/classify", response_model=ClassifyResponse, response_model_exclude_unset=True)
    async def classify(request: ClassifyRequest) -> ClassifyResponse:
        """Label utterances (each with its context) or every labelled turn of whole dialogues."""
        return await service.classify(request)

    @app.get("/v1/model")
    async def model() -> dict:
        """The task, its classes, the window and the runtime this server runs."""
        return service.describe()


def _add_session_routes(app: FastAPI, service: StudentService) -> None:
    @app.post("/v1/sessions", response_model=SessionCreated, status_code=201)
    async def open_session() -> SessionCreated:
        """Open a live dialogue; send its turns one at a time."""
        session = SessionCreated(session_id=service.sessions.open())
        service.metrics.sessions.set(len(service.sessions))
        return session

    @app.post("/v1/sessions/{session_id}/turns", response_model=Scored, response_model_exclude_unset=True)
    async def session_turn(session_id: str, turn: TurnIn) -> Scored:
        """One turn of a live dialogue -> its label, classified with the turns the session has seen."""
        try:
            return await service.turn(session_id, turn)
        except UnknownSession:
            raise HTTPException(404, f"unknown session {session_id[:40]!r} (closed, expired or never opened); "
                                     "open one with POST /v1/sessions") from None

    @app.delete("/v1/sessions/{session_id}", status_code=204)
    async def close_session(session_id: str) -> Response:
        try:
            service.sessions.close(session_id)
        except UnknownSession:
            raise HTTPException(404, f"unknown session {session_id[:40]!r}") from None
        service.metrics.sessions.set(len(service.sessions))
        return Response(status_code=204)


def _add_live_route(app: FastAPI, service: StudentService) -> None:
    @app.websocket("/v1/live")
    async def live(ws: WebSocket, session_id: str | None = None) -> None:
        """One JSON turn per message ({"speaker", "text", "role"}), one answer per turn; a bad message is
        answered with {"error", "status"} and the session goes on."""
        await ws.accept()
        if session_id is None:
            session_id = service.sessions.open()
        else:
            try:
                service.sessions.get(session_id)
            except UnknownSession:
                await ws.send_json({"error": f"unknown session {session_id[:40]!r}", "status": 404})
                await ws.close(code=4404)
                return
        service.metrics.sessions.set(len(service.sessions))
        await ws.send_json({"session_id": session_id, **service.describe()})
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            started = time.perf_counter()
            reply, status = await _live_reply(service, session_id, message)
            service.metrics.observe("/v1/live", status, time.perf_counter() - started)
            await ws.send_json(reply)


async def _live_reply(service: StudentService, session_id: str, message: dict) -> tuple[dict, int]:
    raw = message.get("text")
    if raw is None:
        raw = (message.get("bytes") or b"").decode("utf-8", "replace")
    try:
        turn = TurnIn.model_validate(json.loads(raw))
    except json.JSONDecodeError as err:
        return {"error": f"not JSON: {err.msg} at character {err.pos}", "status": 400}, 400
    except ValidationError as err:
        return {"error": _validation_message(err.errors()), "status": 422}, 422
    try:
        scored = await service.turn(session_id, turn)
    except UnknownSession:
        return {"error": "the session expired; reconnect without session_id", "status": 404}, 404
    return scored.model_dump(exclude_unset=True), 200


def _add_ops_routes(app: FastAPI, service: StudentService) -> None:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ready = service.ready
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def create_app(predictor, settings: ServeSettings | None = None, source: str = ""):
    """The ASGI app for uvicorn: FastAPI with every route, behind the body limit."""
    settings = settings or ServeSettings()
    service = StudentService(predictor, settings, source)
    app = FastAPI(title="dialpref student", version="1", lifespan=service.lifespan,
                  summary=f"{service.task.name}: {', '.join(service.task.class_names)}")
    app.state.service = service
    _add_error_handlers(app)
    _add_metrics_middleware(app, service)
    _add_classify_routes(app, service)
    _add_session_routes(app, service)
    _add_live_route(app, service)
    _add_ops_routes(app, service)
    return BodyLimit(app, settings.max_body_bytes, settings.read_timeout)
