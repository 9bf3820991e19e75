"""Python clients of `dialpref serve`: `Client` (sync) and `AsyncClient`, over httpx and websockets.

    with Client("http://127.0.0.1:8000") as c:
        c.classify(["I'd like a table for two."])[0]["label"]
        with c.live() as session:
            session.send("Can I help?", speaker="waiter", role="assistant")
            session.send("A table for two, please.", speaker="guest")["label"]
"""

from __future__ import annotations

import json
from typing import Iterable, Union

import httpx

Utterance = Union[str, dict]


class ServeError(RuntimeError):
    """The server refused a request (status 4xx) or failed (5xx); the message is the server's."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


def _utterances(items: Iterable[Utterance]) -> list[dict]:
    return [{"text": u} if isinstance(u, str) else dict(u) for u in items]


def _body(utterances, dialogues) -> dict:
    if (utterances is None) == (dialogues is None):
        raise ValueError("give utterances or dialogues, not both or neither")
    return {"utterances": _utterances(utterances)} if utterances is not None else {"dialogues": list(dialogues)}


def _answer(response: httpx.Response):
    if response.status_code >= 400:
        try:
            message = response.json().get("error", response.text)
        except ValueError:
            message = response.text
        raise ServeError(response.status_code, message)
    return response.json() if response.content else None


def _ws_url(base: str, session_id: str | None) -> str:
    url = base.rstrip("/").replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/v1/live"
    return url + (f"?session_id={session_id}" if session_id else "")


def _turn_reply(raw) -> dict:
    reply = json.loads(raw)
    if "error" in reply:
        raise ServeError(reply.get("status", 400), reply["error"])
    return reply


class LiveSession:
    """A live dialogue over a WebSocket: `send` one turn, get that turn's label and scores."""

    def __init__(self, connection) -> None:
        self._ws = connection
        self.info = _turn_reply(connection.recv())
        self.session_id = self.info["session_id"]

    def send(self, text: str, speaker: str = "user", role: str = "user") -> dict:
        self._ws.send(json.dumps({"text": text, "speaker": speaker, "role": role}))
        return _turn_reply(self._ws.recv())

    def close(self) -> None:
        self._ws.__exit__(None, None, None)

    def __enter__(self) -> "LiveSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Client:
    def __init__(self, url: str = "http://127.0.0.1:8000", timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def classify(self, utterances: Iterable[Utterance] | None = None, dialogues: Iterable[dict] | None = None):
        """Utterances (text, or {"text", "speaker", "role", "context": [turns]}) -> one result each;
        dialogues ({"id", "turns": [...]}) -> one result per dialogue with a result per turn."""
        body = _answer(self._http.post("/v1/classify", json=_body(utterances, dialogues)))
        return body["results"] if utterances is not None else body["dialogues"]

    def model(self) -> dict:
        return _answer(self._http.get("/v1/model"))

    def ready(self) -> bool:
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def live(self, session_id: str | None = None) -> LiveSession:
        from websockets.sync.client import connect

        connection = connect(_ws_url(self.url, session_id))
        return LiveSession(connection.__enter__())  # websockets >= 17.1 wants its connections entered

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncLiveSession:
    def __init__(self, connection) -> None:
        self._ws, self.info, self.session_id = connection, None, None

    async def _start(self) -> "AsyncLiveSession":
        self.info = _turn_reply(await self._ws.recv())
        self.session_id = self.info["session_id"]
        return self

    async def send(self, text: str, speaker: str = "user", role: str = "user") -> dict:
        await self._ws.send(json.dumps({"text": text, "speaker": speaker, "role": role}))
        return _turn_reply(await self._ws.recv())

    async def close(self) -> None:
        await self._ws.close()

    async def __aenter__(self) -> "AsyncLiveSession":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


class AsyncClient:
    def __init__(self, url: str = "http://127.0.0.1:8000", timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout)

    async def classify(self, utterances: Iterable[Utterance] | None = None, dialogues: Iterable[dict] | None = None):
        body = _answer(await self._http.post("/v1/classify", json=_body(utterances, dialogues)))
        return body["results"] if utterances is not None else body["dialogues"]

    async def model(self) -> dict:
        return _answer(await self._http.get("/v1/model"))

    async def live(self, session_id: str | None = None) -> AsyncLiveSession:
        from websockets.asyncio.client import connect

        return await AsyncLiveSession(await connect(_ws_url(self.url, session_id)))._start()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()
