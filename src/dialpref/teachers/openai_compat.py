"""Any OpenAI-compatible chat server (vLLM, Ollama, llama.cpp server, hosted APIs) as a teacher.

One async httpx client, a semaphore for concurrency, a timeout per call and
retries with exponential backoff (honouring Retry-After) on 429, 5xx,
timeouts and dropped connections. The API key is read from an environment
variable at call time and only ever placed in the Authorization header: it
never reaches logs, the cache, outputs or error messages.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import time
from typing import Any, Sequence

import httpx

from dialpref.teachers.base import (BatchedMixin, ChatRequest, Completion, Message, OptionScores, ResultCallback,
                                    TeacherError)
from dialpref.secrets import scrub_and_cut
from dialpref.teachers.context import SERVER_CONTEXT, estimated_tokens
from dialpref.teachers.replies import parse_reply, top_tokens

log = logging.getLogger("dialpref.teachers.openai")

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class _Retry(Exception):
    """One attempt failed in a way another attempt may not."""

    def __init__(self, message: str, kind: str, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.error = TeacherError(message, kind=kind, retryable=True)
        self.error.retry_after = retry_after


class OpenAICompatTeacher(BatchedMixin):
    backend = "openai"

    def __init__(self, base_url: str, model: str, *, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 8, timeout: float = 60.0, max_retries: int = 4,
                 backoff: float = 1.0, json_mode: str = "auto", context_tokens: int = SERVER_CONTEXT) -> None:
        """`json_mode`: 'json_schema' (OpenAI, vLLM), 'json_object' (llama.cpp server: schema inside
        json_object), 'none', or 'auto' (try json_schema, fall back once if the server refuses it).
        `context_tokens`: the server model's context window; longer dialogues are cut to fit it."""
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model = model
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.json_mode = json_mode
        self.retries_made = 0
        self.context_tokens = context_tokens
        self._served: Any = _UNASKED

    def identity(self) -> dict[str, Any]:
        """URL and model name, plus what the server reports of the model it serves under that name
        (llama.cpp's server: its size and parameter count), so swapped weights miss the cache."""
        if self._served is _UNASKED:
            self._served = self._served_model()
        return {"url": self.base_url, "model": self.model, **({"served": self._served} if self._served else {})}

    def _served_model(self) -> dict[str, Any] | None:
        """The /models entry for our model: id and any size metadata; None if the server lists none."""
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            try:
                response = httpx.get(f"{self.base_url}/models", headers=self._headers(), timeout=self.timeout)
            except httpx.HTTPError as err:
                last = f"connection error: {type(err).__name__}"
                if attempt < self.max_retries:
                    time.sleep(self._delay(attempt, None))
                continue
            if response.status_code in RETRY_STATUS and attempt < self.max_retries:
                time.sleep(self._delay(attempt, response.headers.get("retry-after")))
                continue
            if response.status_code >= 400:
                return None  # a server without a model list: the name is all there is
            try:
                entries = response.json().get("data") or []
            except (ValueError, AttributeError):
                return None
            return _served_entry(entries, self.model)
        raise TeacherError(f"cannot reach {self.base_url} to ask what model it serves ({last})",
                           kind="connection error")

    def fits(self, messages: Sequence[Message]) -> bool:
        """Whether a prompt fits the context, from its estimated length (a server has no tokenizer here)."""
        return estimated_tokens(messages) < self.context_tokens - 16

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    # --- payloads -------------------------------------------------------------------------
    def _chat_payload(self, request: ChatRequest, json_mode: str) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model, "messages": request.message_list, "temperature": request.temperature,
            "top_p": request.top_p, "max_tokens": request.max_tokens, "seed": request.seed,
        }
        if request.top_k is not None:
            payload["top_k"] = request.top_k
        schema = request.schema
        if schema is not None and json_mode == "json_schema":
            payload["response_format"] = {"type": "json_schema",
                                          "json_schema": {"name": "answer", "schema": schema}}
        elif schema is not None and json_mode == "json_object":
            payload["response_format"] = {"type": "json_object", "schema": schema}
        return payload

    # --- transport ------------------------------------------------------------------------
    async def _post(self, client: httpx.AsyncClient, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The reply's JSON body, retrying what can pass (429, 5xx, timeouts, dropped connections, bodies
        that do not decode); anything else is a TeacherError at once. No sleep after the last try."""
        last: TeacherError | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.retries_made += 1
                await asyncio.sleep(self._delay(attempt - 1, last.retry_after if last else None))
            try:
                return await self._attempt(client, path, payload)
            except _Retry as err:
                last = err.error
        raise TeacherError(f"{self.base_url}{path} failed after {self.max_retries + 1} attempts; last: {last}",
                           kind=last.kind if last else "teacher error")

    async def _attempt(self, client: httpx.AsyncClient, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._send(client, self.base_url, path, payload)

    async def _send(self, client: httpx.AsyncClient, base_url: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One attempt at `base_url` (a fleet's endpoints share everything else): the body, a _Retry, or a
        TeacherError."""
        try:
            response = await client.post(f"{base_url}{path}", json=payload, headers=self._headers())
            text = response.text
        except httpx.TimeoutException as err:
            raise _Retry(f"{type(err).__name__} after {self.timeout:.0f}s timeout", "timeout") from None
        except httpx.DecodingError:
            raise _Retry("the reply body could not be decoded (bad Content-Encoding)", "undecodable reply") \
                from None
        except (httpx.HTTPError, OSError) as err:
            raise _Retry(f"connection error: {type(err).__name__}", "connection error") from None
        status = response.status_code
        if status >= 400 and _refuses_format(payload, text):
            # e.g. llama-cpp-python's server answers 500 to json_schema: retrying cannot help.
            raise TeacherError(f"HTTP {status}: server refused response_format "
                               f"{payload['response_format']['type']}", kind="format refused")
        if status in RETRY_STATUS:
            raise _Retry(f"HTTP {status}: {self._cut(text, 200)}", f"HTTP {status}",
                         retry_after=response.headers.get("retry-after"))
        if status >= 400:
            raise TeacherError(f"HTTP {status} from {base_url}{path}: {self._cut(text, 300)}",
                               kind=f"HTTP {status}")
        try:
            return response.json()
        except ValueError:
            raise _Retry(f"unparseable response body: {self._cut(text, 200)!r}", "unparseable reply") from None

    def _cut(self, text: str, limit: int) -> str:
        """A server's text for a message: the key removed first, then cut (never the other way round)."""
        return scrub_and_cut(text, limit, (self.api_key_env,))

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                seconds = float(retry_after)
                if math.isfinite(seconds) and seconds >= 0:
                    return min(seconds, 60.0)
            except ValueError:
                pass
        return self.backoff * (2 ** attempt) * (0.5 + random.random() / 2)

    async def _chat(self, client: httpx.AsyncClient, request: ChatRequest) -> Completion:
        mode = "json_schema" if self.json_mode == "auto" else self.json_mode
        try:
            body = await self._post(client, "/chat/completions", self._chat_payload(request, mode))
        except TeacherError as err:
            if self.json_mode == "auto" and request.schema is not None and err.kind == "format refused":
                # only a refusal of the format itself switches it, for the rest of the run
                log.info("server refused response_format json_schema; using json_object with the schema")
                self.json_mode = "json_object"
                body = await self._post(client, "/chat/completions", self._chat_payload(request, "json_object"))
            else:
                raise
        reply = parse_reply(body, self.base_url)
        choice, usage = reply.choices[0], reply.usage
        return Completion(text=choice.message.content or "", finish_reason=choice.finish_reason or "stop",
                          prompt_tokens=(usage.prompt_tokens or 0) if usage else 0,
                          completion_tokens=(usage.completion_tokens or 0) if usage else 0,
                          extra={"server_model": reply.model} if reply.model else {})

    async def _run_many(self, requests: Sequence[ChatRequest],
                        on_result: ResultCallback | None) -> list[Completion | Exception]:
        semaphore = asyncio.Semaphore(self.concurrency)
        results: list[Completion | Exception | None] = [None] * len(requests)
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            async def one(index: int, request: ChatRequest) -> None:
                async with semaphore:
                    try:
                        result: Completion | Exception = await self._chat(client, request)
                    except TeacherError as err:
                        result = err
                results[index] = result
                if on_result is not None:
                    on_result(index, result)

            await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))
        return results  # type: ignore[return-value]

    # --- protocol -------------------------------------------------------------------------
    def complete_many(self, requests: Sequence[ChatRequest],
                      on_result: ResultCallback | None = None) -> list[Completion | Exception]:
        return asyncio.run(self._run_many(requests, on_result))

    def option_logprobs(self, messages: Sequence[Message], options: Sequence[str]) -> OptionScores:
        """Top next-token log-probabilities from one 1-token completion, matched to the options.

        A top token counts for an option when, stripped and lower-cased, it is a
        prefix of exactly one option; options missing from the top-k get -inf.
        Short distinct options (letters, or label names with distinct starts) work best.
        """
        payload = {"model": self.model, "messages": list(messages), "max_tokens": 1, "temperature": 0.0,
                   "logprobs": True, "top_logprobs": 20}

        async def go() -> dict[str, Any]:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                return await self._post(client, "/chat/completions", payload)

        reply = parse_reply(asyncio.run(go()), self.base_url)
        top = top_tokens(reply, self.base_url)
        return OptionScores(match_options(top, options),
                            prompt_tokens=(reply.usage.prompt_tokens or 0) if reply.usage else 0)


_UNASKED = object()
_SERVED_FIELDS = ("id", "owned_by")  # not `created`: some servers give the time of the request
_SERVED_META = ("n_params", "size", "n_vocab", "n_ctx_train", "n_embd")


def _served_entry(entries: Any, model: str) -> dict[str, Any] | None:
    if not isinstance(entries, list):
        return None
    entries = [e for e in entries if isinstance(e, dict)]
    match = [e for e in entries if e.get("id") == model] or (entries if len(entries) == 1 else [])
    if not match:
        return None
    entry = match[0]
    meta = entry.get("meta") if isinstance(entry.get("meta"), dict) else {}
    found = {k: entry[k] for k in _SERVED_FIELDS if isinstance(entry.get(k), (str, int, float))}
    found.update({k: meta[k] for k in _SERVED_META if isinstance(meta.get(k), (int, float))})
    return found or None


def _refuses_format(payload: dict[str, Any], body: str) -> bool:
    fmt = (payload.get("response_format") or {}).get("type")
    return fmt == "json_schema" and ("json_schema" in body or "response_format" in body)


def match_options(top_tokens, options: Sequence[str]) -> dict[str, float]:
    """Sum the probability of the top tokens that begin exactly one option."""
    mass = {o: 0.0 for o in options}
    for token, logprob in top_tokens:
        piece = token.strip().lower()
        if not piece:
            continue
        hits = [o for o in options if o.lower().startswith(piece)]
        if len(hits) == 1:
            mass[hits[0]] += math.exp(logprob)
    return {o: (math.log(p) if p > 0 else -math.inf) for o, p in mass.items()}
