"""The embedded teacher: a GGUF model run in-process by llama-cpp-python.

Prompts are rendered with the model's own chat template (from the GGUF
metadata) or, for base models without one, a plain "User:/Assistant:" form.
JSON answers are constrained by a grammar built from the schema. Option
probabilities come from the logits after one forward pass over the prompt.
llama.cpp keeps the KV state of the previous prompt, so a prompt that shares
a prefix with the last one (same instructions, same dialogue) only evaluates
the new suffix.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dialpref.teachers.base import ChatRequest, Completion, Message, OptionScores, SequentialMixin, TeacherError
from dialpref.teachers.packaged import DEFAULT_MODEL, resolve_model_path

log = logging.getLogger("dialpref.teachers.llamacpp")

PLAIN_ROLES = {"system": "", "user": "User: ", "assistant": "Assistant: "}


class LlamaCppTeacher(SequentialMixin):
    backend = "llamacpp"

    def __init__(self, model: str = DEFAULT_MODEL, *, n_ctx: int = 4096, n_threads: int | None = None,
                 seed: int = 0) -> None:
        try:
            import llama_cpp
        except ImportError as err:  # pragma: no cover - depends on the extra
            raise TeacherError("the embedded teacher needs llama-cpp-python: pip install 'dialpref[llamacpp]'") \
                from err
        self.model, self.path = resolve_model_path(model)
        self._size = Path(self.path).stat().st_size
        self.llm = llama_cpp.Llama(model_path=str(self.path), n_ctx=n_ctx, seed=seed, verbose=False,
                                   n_threads=n_threads or max(1, os.cpu_count() or 1))
        self._llama_cpp = llama_cpp
        template = self.llm.metadata.get("tokenizer.chat_template")
        self._formatter = None
        if template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            self._formatter = Jinja2ChatFormatter(template=template, eos_token=self._token_text(self.llm.token_eos()),
                                                  bos_token=self._token_text(self.llm.token_bos()),
                                                  add_generation_prompt=True)
        self._option_ids: dict[tuple[str, ...], dict[str, list[int]]] = {}
        self._grammars: dict[tuple, Any] = {}
        self.reuse_prefix = True  # False: every prompt is evaluated from scratch (the naive cost, for benchmarks)
        self.evaluated_tokens = 0  # prompt tokens actually run through the model (after prefix reuse)

    def _token_text(self, token: int) -> str:
        return self.llm._model.token_get_text(token) if token != -1 else ""

    def identity(self) -> dict[str, Any]:
        return {"model": self.model, "file": Path(self.path).name, "bytes": self._size}

    # --- prompts --------------------------------------------------------------------------
    def render(self, messages: Sequence[Message]) -> tuple[str, list[str]]:
        """The prompt text for `messages`, ending where the assistant's answer begins, and stop strings."""
        if self._formatter is not None:
            response = self._formatter(messages=list(messages))
            stop = response.stop if isinstance(response.stop, list) else [response.stop] if response.stop else []
            return response.prompt, stop
        parts = [f"{PLAIN_ROLES.get(m['role'], '')}{m['content']}" for m in messages]
        return "\n\n".join(parts) + "\n\nAssistant:", ["\nUser:", "\n\nUser"]

    def tokenize(self, prompt: str) -> list[int]:
        tokens = self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        bos = self.llm.token_bos()
        if len(tokens) > 1 and tokens[0] == bos and tokens[1] == bos:
            tokens = tokens[1:]
        return tokens

    def tokenize_piece(self, text: str) -> list[int]:
        """Tokens of text that continues a prompt (no BOS, special tokens as plain text)."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    # --- protocol -------------------------------------------------------------------------
    def complete(self, request: ChatRequest) -> Completion:
        prompt, stop = self.render(request.message_list)
        grammar = self._grammar(request)
        if not self.reuse_prefix:
            self.llm.n_tokens = 0
        before = self._shared_prefix(self.tokenize(prompt))
        try:
            out = self.llm.create_completion(
                prompt, max_tokens=request.max_tokens, temperature=request.temperature, top_p=request.top_p,
                top_k=request.top_k if request.top_k is not None else 0, seed=request.seed, stop=stop,
                grammar=grammar)
        except ValueError as err:  # e.g. prompt longer than the context window
            raise TeacherError(f"{self.model}: {err}") from None
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        self.evaluated_tokens += usage.get("prompt_tokens", 0) - before
        return Completion(text=choice["text"], finish_reason=choice.get("finish_reason") or "stop",
                          prompt_tokens=usage.get("prompt_tokens", 0),
                          completion_tokens=usage.get("completion_tokens", 0),
                          extra={"evaluated_prompt_tokens": usage.get("prompt_tokens", 0) - before})

    def _grammar(self, request: ChatRequest):
        """A GBNF grammar for the request's schema or choices, built once per distinct constraint."""
        if request.json_schema is None and not request.choices:
            return None
        key = (request.json_schema, request.choices)
        if key not in self._grammars:
            if request.choices:
                gbnf = "root ::= " + " | ".join(json.dumps(c) for c in request.choices)
                self._grammars[key] = self._llama_cpp.LlamaGrammar.from_string(gbnf, verbose=False)
            else:
                self._grammars[key] = self._llama_cpp.LlamaGrammar.from_json_schema(request.json_schema,
                                                                                   verbose=False)
        return self._grammars[key]

    def _shared_prefix(self, tokens: list[int]) -> int:
        cached = self.llm._input_ids[: self.llm.n_tokens]
        shared = 0
        for a, b in zip(cached, tokens[:-1]):
            if a != b:
                break
            shared += 1
        return shared

    def option_token_ids(self, options: Sequence[str]) -> dict[str, list[int]]:
        """First token of each option, bare and after a space; options must not share one."""
        key = tuple(options)
        if key in self._option_ids:
            return self._option_ids[key]
        ids: dict[str, list[int]] = {}
        owner: dict[int, str] = {}
        for option in options:
            firsts = []
            for variant in (option, " " + option):
                toks = self.tokenize_piece(variant)
                if toks and toks[0] not in firsts:
                    firsts.append(toks[0])
            for tok in firsts:
                if tok in owner and owner[tok] != option:
                    raise TeacherError(f"options {owner[tok]!r} and {option!r} start with the same token "
                                       f"{self._token_text(tok)!r}; use distinct first words or letters")
                owner[tok] = option
            ids[option] = firsts
        self._option_ids[key] = ids
        return ids

    def option_logprobs(self, messages: Sequence[Message], options: Sequence[str]) -> OptionScores:
        prompt, _ = self.render(messages)
        tokens = self.tokenize(prompt)
        if len(tokens) >= self.llm.n_ctx():
            raise TeacherError(f"{self.model}: prompt of {len(tokens)} tokens exceeds the context of "
                               f"{self.llm.n_ctx()}")
        ids = self.option_token_ids(options)
        shared = self._shared_prefix(tokens) if self.reuse_prefix else 0
        self.llm.n_tokens = shared
        self.llm.eval(tokens[shared:])
        self.evaluated_tokens += len(tokens) - shared
        return OptionScores(self._option_logprobs_now(ids), prompt_tokens=len(tokens))

    def _option_logprobs_now(self, ids: dict[str, list[int]]) -> dict[str, float]:
        """Log-probabilities of the options at the last evaluated token."""
        # Without logits_all, llama-cpp-python keeps no `scores`; the context still holds the
        # logits of the last evaluated token, which is all one forward pass needs.
        logits = np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self.llm.n_vocab(),)).astype(np.float64)
        top = logits.max()
        log_z = top + math.log(np.exp(logits - top).sum())
        logprobs = {}
        for option, toks in ids.items():
            values = logits[toks] - log_z
            m = values.max()
            logprobs[option] = float(m + math.log(np.exp(values - m).sum()))
        return logprobs

    # --- causal mode --------------------------------------------------------------------------
    def stream_option_logprobs(self, head: str, segments: Sequence[str], ask: str,
                               options: Sequence[str]) -> list[OptionScores]:
        """Read `head`, then each segment once; after each, the options' log-probs for `head+segments+ask`.

        The `ask` tokens are dropped from the KV state before the next segment
        is appended, so segment i is answered from exactly the prompt
        head + segments[:i+1] + ask, while each segment is evaluated only once.
        `OptionScores.prompt_tokens` is that prompt's length; `evaluated_tokens`
        grows by the segment plus the ask.
        """
        ids = self.option_token_ids(options)
        pieces = [self.tokenize_piece(s) for s in segments]
        ask_tokens = self.tokenize_piece(ask)
        context = self.tokenize(head)
        total = len(context) + sum(len(p) for p in pieces) + len(ask_tokens)
        if total >= self.llm.n_ctx():
            raise TeacherError(f"{self.model}: causal prompt of {total} tokens exceeds the context of "
                               f"{self.llm.n_ctx()}")
        shared = self._shared_prefix(context) if self.reuse_prefix else 0
        self.llm.n_tokens = shared
        if context[shared:]:
            self.llm.eval(context[shared:])
        self.evaluated_tokens += len(context) - shared
        out = []
        for piece in pieces:
            self.llm.eval(piece)
            kept = self.llm.n_tokens
            self.llm.eval(ask_tokens)
            self.evaluated_tokens += len(piece) + len(ask_tokens)
            out.append(OptionScores(self._option_logprobs_now(ids), prompt_tokens=kept + len(ask_tokens)))
            self.llm.n_tokens = kept  # forget the question; the next segment follows the last one
        return out

    def fresh_option_logprobs(self, text_pieces: Sequence[str], options: Sequence[str]) -> OptionScores:
        """The same token sequence `stream_option_logprobs` builds, evaluated from scratch (for checks)."""
        ids = self.option_token_ids(options)
        tokens = self.tokenize(text_pieces[0])
        for piece in text_pieces[1:]:
            tokens += self.tokenize_piece(piece)
        self.llm.n_tokens = 0
        self.llm.eval(tokens)
        self.evaluated_tokens += len(tokens)
        return OptionScores(self._option_logprobs_now(ids), prompt_tokens=len(tokens))
